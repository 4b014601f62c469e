"""What a catalog plug-in hands to ingest: canonical items and interactions, and every row it rejected.

Quarantine rows name the table and step that rejected them in `source` ("items/read",
"interactions/item", ...) and a reason `"<code>"` or `"<code>: <detail>"`; counts.json counts codes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from pipelines.common.schemas import ITEMS, QUARANTINE, conform

Table = Literal["items", "interactions"]
SEP = " [SEP] "


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
    """QUARANTINE rows for rejected canonical rows (plain strings are literals); payload = the row as JSON."""
    def expr(value: str | pl.Expr | None) -> pl.Expr:
        return value if isinstance(value, pl.Expr) else pl.lit(value, pl.String)

    columns = [c for c in rejected.columns if not c.startswith("_") and c != "row_ref"]
    frame = rejected.select(
        source=pl.lit(f"{table}/") + expr(step),
        row_ref="row_ref",
        field=expr(field),
        reason=expr(reason),
        payload=pl.struct(columns).struct.json_encode(),
    )
    return conform(frame.to_arrow(), QUARANTINE, f"{table} quarantine")


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


def check_items(items: pl.DataFrame, catalog: str) -> tuple[pa.Table, pa.Table]:
    """Split mapped items (row_ref, item_id, title, document, any other ITEMS columns) into ITEMS and quarantine.

    An item needs a title and a document (step "title"), and its id once (step "unique": the first
    titled row wins; later ones are quarantined with a pointer to it).
    """
    frame = items.with_columns(catalog=pl.lit(catalog), title=pl.col("title").str.strip_chars())
    no_title, no_document = (pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in ("title", "document"))
    untitled = frame.filter(no_title | no_document)
    titled = frame.filter(~(no_title | no_document))
    first = pl.col("item_id").is_first_distinct()
    quarantine = pa.concat_tables([
        quarantine_frame(untitled, "items", "title",
                         reason=pl.when(no_title).then(pl.lit("missing_title")).otherwise(pl.lit("empty_document")),
                         field=pl.when(no_title).then(pl.lit("title")).otherwise(pl.lit("document"))),
        quarantine_frame(titled.with_columns(_first=pl.col("row_ref").first().over("item_id")).filter(~first),
                         "items", "unique", reason=pl.lit("duplicate_item_id: first at ") + pl.col("_first"),
                         field="item_id"),
    ])
    return canonical(titled.filter(first), ITEMS, f"{catalog} items"), quarantine


def settings(options: dict[str, Any], catalog: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """A plug-in's options over its defaults; an unknown or missing (None) option is an error."""
    unknown = set(options) - set(defaults)
    if unknown:
        raise ValueError(f"ingest.catalogs.{catalog}: unknown option(s) {sorted(unknown)}; "
                         f"expected {sorted(defaults)}")
    merged = {**defaults, **options}
    missing = [k for k, v in merged.items() if v is None]
    if missing:
        raise ValueError(f"ingest.catalogs.{catalog}: missing option(s) {missing}")
    return merged
