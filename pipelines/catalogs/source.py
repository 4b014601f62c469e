"""What a catalog plug-in hands to ingest: a Plan of its raw files, and the pieces plug-ins share.

A Plan names how to read each table, and both engines read it the same way: a `Stream` is a large
file read split by split, each chunk typed (readers.py) and mapped onto the canonical columns by the
plug-in's row-local `map`; items may instead come whole from a function (joins and group-bys over
small files). `Source` is a whole catalog in memory (`pipelines.catalogs.load`).

Quarantine rows name the table and step that rejected them in `source` ("items/read",
"interactions/item", ...) and a reason `"<code>"` or `"<code>: <detail>"`; counts.json counts codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from pipelines.catalogs.files import resolve
from pipelines.catalogs.splits import Csv, Format
from pipelines.common.params import ParamsError
from pipelines.common.schemas import ITEMS, QUARANTINE, conform

Table = Literal["items", "interactions"]
SEP = " [SEP] "
ORDER = "_ord"  # a row's line (JSONL) or row number in its file: the engines' source order and tie-break
Mapping = Callable[[pl.DataFrame], pl.DataFrame]
Kind = Literal["str", "float", "int", "str_list", "json"]


@dataclass(frozen=True)
class Field:
    """A field of a source file, typed on reading (pipelines/catalogs/readers.py)."""

    name: str  # the source's field / column name
    kind: Kind = "str"
    required: bool = False


@dataclass(frozen=True)
class Stream:
    """A raw file both engines read in splits.

    `map` gets a typed chunk (row_ref, _ord, the fields) and returns the same rows in the same order
    with the canonical columns (items: item_id, title, document and any other ITEMS column); it is
    row-local, so any chunking gives the same rows. It may refuse a row by setting `_reason` (and
    `_field`): the row is then quarantined at step "read" with its typed fields as payload.
    """

    path: str  # under the catalog's source folder, and how row refs name the file
    fields: tuple[Field, ...]
    map: Mapping
    list_separator: str = "|"  # splits text into a str_list field (CSV)
    location: str | None = None  # where it opens when that is not `<source>/<path>` (files.py: a zip member)
    format: Format | None = None  # None: from the path's suffix
    csv: Csv = Csv()

    def where(self, source: str) -> str:
        """The file's location for a catalog whose source is `source`."""
        return self.location or resolve(source, self.path)


@dataclass(frozen=True)
class Items:
    """A catalog's items built whole by its plug-in, before the title and unique checks."""

    frame: pl.DataFrame  # row_ref, item_id, title, document, any other ITEMS columns
    quarantine: pa.Table  # QUARANTINE: the rows the plug-in could not read or use
    raw: int  # items read
    stats: dict[str, int] = field(default_factory=dict)  # source facts worth a metric (e.g. join sizes)


@dataclass(frozen=True)
class Plan:
    interactions: Stream
    items: Stream | Callable[[], Items]  # a picklable callable (e.g. functools.partial): Beam runs it on a worker


@dataclass(frozen=True)
class Source:
    items: pa.Table  # ITEMS: unique ids, each with a title and a document
    interactions: pa.Table  # INTERACTIONS as read, before the ingest filters
    quarantine: pa.Table  # QUARANTINE: the rows the plug-in could not read, map or use
    raw: dict[Table, int]  # rows read per table; raw = kept + quarantined is checked downstream
    stats: dict[str, int] = field(default_factory=dict)  # source facts worth a metric (e.g. join sizes)


def rejection(table: Table, step: str, row_ref: str, reason: str, field: str | None = None,
              payload: str | None = None) -> dict[str, Any]:
    """One QUARANTINE row."""
    return {"source": f"{table}/{step}", "row_ref": row_ref, "field": field, "reason": reason, "payload": payload}


def quarantine_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=QUARANTINE)


def quarantine_frame(rejected: pl.DataFrame, table: Table, step: str | pl.Expr, reason: str | pl.Expr,
                     field: str | pl.Expr | None) -> pa.Table:
    """QUARANTINE rows for rejected canonical rows (plain strings are literals); payload = the row as JSON,
    or its `_payload` where it has one. An ORDER column (the source position) is kept."""
    def expr(value: str | pl.Expr | None) -> pl.Expr:
        return value if isinstance(value, pl.Expr) else pl.lit(value, pl.String)

    frame = rejected.select(
        source=pl.lit(f"{table}/") + expr(step),
        row_ref="row_ref",
        field=expr(field),
        reason=expr(reason),
        payload=pl.col("_payload") if "_payload" in rejected.columns else payload(rejected.columns),
    )
    ordered = ORDER in rejected.columns
    schema = QUARANTINE.append(pa.field(ORDER, pa.int64())) if ordered else QUARANTINE
    if ordered:
        frame = frame.with_columns(rejected[ORDER].cast(pl.Int64))
    return conform(frame.to_arrow(), schema, f"{table} quarantine")


def payload(columns: Sequence[str]) -> pl.Expr:
    """A row as JSON: its columns but row_ref and the engines' own (`_...`)."""
    return pl.struct([c for c in columns if not c.startswith("_") and c != "row_ref"]).struct.json_encode()


def document(parts: Sequence[pl.Expr], max_chars: int) -> pl.Expr:
    """The text to embed: the non-blank parts joined by " [SEP] ", cut to `max_chars`."""
    stripped = [p.str.strip_chars() for p in parts]
    return pl.concat_str([pl.when(p != "").then(p) for p in stripped], separator=SEP,
                         ignore_nulls=True).str.slice(0, max_chars)


def film_document(max_chars: int) -> pl.Expr:
    """A film's document from columns title, year, categories, director, description, cast (text).

    Title and year first, the long text after the short facts, the cast last (it is the longest).
    """
    labelled = {"Genres: ": pl.col("categories").list.join(", "), "Directed by ": pl.col("director"),
                "Cast: ": pl.col("cast")}
    title = pl.when(pl.col("year").is_not_null()).then(pl.format("{} ({})", "title", "year")).otherwise("title")
    genres, director, cast = (pl.when(v.str.len_chars() > 0).then(pl.lit(k) + v) for k, v in labelled.items())
    return document([title, genres, director, pl.col("description"), cast], max_chars)


def attributes(values: dict[str, Any]) -> str:
    """Display fields as a JSON object, leaving out the empty ones."""
    return json.dumps({k: v for k, v in values.items() if v not in (None, "", [], {})}, ensure_ascii=False,
                      sort_keys=True)


def canonical(frame: pl.DataFrame, schema: pa.Schema, name: str) -> pa.Table:
    """`frame` as `schema`: its columns cast, the nullable columns it lacks filled with nulls."""
    absent = [pl.lit(None).alias(f.name) for f in schema if f.name not in frame.columns]
    return conform(frame.with_columns(absent).select(schema.names).to_arrow(), schema, name)


def titled(items: pl.DataFrame, catalog: str) -> tuple[pl.DataFrame, pa.Table]:
    """Mapped items (row_ref, item_id, title, document, ...) that have a title and a document, each with
    its `_payload` (the unique check may still quarantine it); and the quarantine of the others (step "title")."""
    frame = items.with_columns(catalog=pl.lit(catalog), title=pl.col("title").str.strip_chars())
    no_title, no_document = (pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in ("title", "document"))
    quarantine = quarantine_frame(frame.filter(no_title | no_document), "items", "title",
                                  reason=pl.when(no_title).then(pl.lit("missing_title")).otherwise(pl.lit("empty_document")),
                                  field=pl.when(no_title).then(pl.lit("title")).otherwise(pl.lit("document")))
    return frame.filter(~(no_title | no_document)).with_columns(_payload=payload(frame.columns)), quarantine


def duplicates(rows: pl.DataFrame) -> pa.Table:
    """Quarantine of titled items whose id an earlier row (`_first`, its row_ref) already has (step "unique")."""
    return quarantine_frame(rows, "items", "unique", reason=pl.lit("duplicate_item_id: first at ") + pl.col("_first"),
                            field="item_id")


def check_items(items: pl.DataFrame, catalog: str) -> tuple[pa.Table, pa.Table]:
    """Split mapped items (row_ref, item_id, title, document, any other ITEMS columns) into ITEMS and quarantine.

    An item needs a title and a document (step "title"), and its id once (step "unique": the first
    titled row wins; later ones are quarantined with a pointer to it).
    """
    kept, untitled = titled(items, catalog)
    first = pl.col("item_id").is_first_distinct()
    later = kept.with_columns(_first=pl.col("row_ref").first().over("item_id")).filter(~first)
    quarantine = pa.concat_tables([untitled, duplicates(later)])
    return canonical(kept.filter(first), ITEMS, f"{catalog} items"), quarantine


def settings(options: dict[str, Any], catalog: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """A plug-in's options over its defaults; an unknown or missing (None) option is an error."""
    unknown = set(options) - set(defaults)
    if unknown:
        raise ParamsError(f"{options_key(catalog)}: unknown option(s) {sorted(unknown)}; "
                          f"expected {sorted(defaults)}")
    merged = {**defaults, **options}
    missing = [k for k, v in merged.items() if v is None]
    if missing:
        raise ParamsError(f"{options_key(catalog)}: missing option(s) {missing}")
    return merged


def options_key(catalog: str) -> str:
    """Where a catalog's plug-in options are in params.yaml, for error messages."""
    return f"catalogs.{catalog}.ingest"
