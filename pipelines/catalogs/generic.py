"""Any CSV / TSV / JSON / JSONL / Parquet catalog, its columns mapped onto the canonical fields in params.yaml:

    catalogs:
      drugs:
        source: data/sources/drugs.zip         # a file or a folder; repo-relative, absolute or an fsspec URL
        ingest:
          plugin: generic
          interactions:
            member: drug_reviews.tsv           # a file inside a zip (the source, or `path` under it)
            columns: {item_id: drug, rating: verdict, timestamp: date, summary: condition, text: review}
            rating_map: {positive: 5, neutral: 3, negative: 1}     # text ratings (case-insensitive)
            # rating_scale: [1, 10]            # ratings on another scale, rescaled to 1-5 (the filters' scale)
            timestamp_format: "%B %d, %Y"      # strptime format of a text date (else: unix seconds)
          items:
            from: interactions                 # no item table: grouped from the interactions file
            columns: {item_id: drug, title: drug, categories: condition}
            document: [title, categories]      # canonical fields joined by " [SEP] "

A file spec (`interactions`, `items`) names its file by `path` (relative to a source folder; left out:
the source file itself) and/or `member` (a file inside a zip), and optionally `format` (csv | jsonl |
json | parquet; default from the name: .csv, .tsv, .jsonl, .ndjson, .json (one array of objects),
.parquet, each optionally .gz / .zst / .bz2 / .xz), `delimiter` (default "," or a tab for .tsv) and
`quote` (default '"'; null: no quoting).
`items: {from: interactions, ...}` builds the item table from the interactions file: one item per
item_id, each field its first non-null value in file order. item_id and rating (interactions) and
item_id and title (items) must be mapped; one source column may feed several fields (a JSONL list field,
such as categories, holds a JSON list of strings; CSV text is split by `list_separator`). Text fields
have their HTML entities unescaped (`unescape_html`, on by default: review dumps often hold `&#039;`).
A rating not in `rating_map` or outside `rating_scale` (ratings on another scale, rescaled to the
filters' 1-5), or a date that does not parse, quarantines its row at step "read".
"""

from __future__ import annotations

import html
import posixpath
from collections.abc import Mapping
from functools import partial
from typing import Any, get_args

import polars as pl

from pipelines.catalogs.files import resolve, zip_member
from pipelines.catalogs.readers import Field
from pipelines.catalogs.source import (Items, Kind, Plan, Stream, Table, document, options_key, quarantine_table,
                                       settings)
from pipelines.catalogs.splits import Csv, Format, file_format
from pipelines.catalogs.streams import read_whole
from pipelines.common.params import ParamsError

DEFAULTS = {"interactions": None, "items": None, "document_max_chars": 1200, "list_separator": "|",
            "unescape_html": True}
KINDS: dict[Table, dict[str, Kind]] = {
    "interactions": {"item_id": "str", "rating": "float", "user_id": "str", "timestamp": "int", "summary": "str",
                     "text": "str"},
    "items": {"item_id": "str", "title": "str", "creator": "str", "description": "str", "categories": "str_list",
              "year": "int", "price": "float", "url": "str"},
}
REQUIRED: dict[Table, set[str]] = {"interactions": {"item_id", "rating"}, "items": {"item_id"}}  # a row needs a value
MUST_MAP: dict[Table, set[str]] = {"interactions": {"item_id", "rating"}, "items": {"item_id", "title"}}
TEXT = {"summary", "text", "title", "creator", "description"}  # fields whose HTML entities are unescaped
FILE_KEYS = {"path", "member", "format", "delimiter", "quote", "columns"}
SPEC_KEYS: dict[Table, set[str]] = {"interactions": FILE_KEYS | {"rating_map", "rating_scale", "timestamp_format"},
                                    "items": FILE_KEYS | {"document", "from"}}


def unescaped(values: pl.Series) -> pl.Series:
    """HTML entities unescaped (Polars has no such function), calling Python only for values holding an '&'."""
    if not values.str.contains("&", literal=True).any():
        return values
    return pl.Series(values.name, [html.unescape(v) if v and "&" in v else v for v in values.to_list()], pl.String)


def refusal(reason: pl.Expr, field: str) -> tuple[pl.Expr, pl.Expr]:
    return reason, pl.when(reason.is_not_null()).then(pl.lit(field))


def canonical_columns(frame: pl.DataFrame, columns: Mapping[str, str], unescape: bool,
                      rating_map: Mapping[str, float] | None = None, timestamp_format: str | None = None,
                      rating_scale: tuple[float, float] | None = None) -> pl.DataFrame:
    """A typed chunk's source columns as the canonical fields; a text rating or date that does not convert, or a
    rating outside `rating_scale` (rescaled to 1-5), refuses its row (`_reason`, `_field`: pipelines.catalogs.streams)."""
    out = frame.select(pl.col(source).alias(name) for name, source in columns.items())
    converted: dict[str, pl.Expr] = {}
    refusals: list[tuple[pl.Expr, pl.Expr]] = []  # all computed from the text columns, side by side
    if rating_map is not None:
        text = pl.col("rating").str.strip_chars()
        converted["rating"] = text.str.to_lowercase().replace_strict(
            {k.lower(): float(v) for k, v in rating_map.items()}, default=None, return_dtype=pl.Float64)
        refusals.append(refusal(pl.when(converted["rating"].is_null()).then(
            pl.lit(f"unmapped_rating: expected one of {sorted(rating_map)}, got ") + text.str.slice(0, 40)),
            columns["rating"]))
    if rating_scale is not None:
        low, high = rating_scale
        number = converted.get("rating", pl.col("rating"))
        refusals.append(refusal(pl.when((number < low) | (number > high)).then(
            pl.lit(f"rating_out_of_scale: expected {low:g} to {high:g}, got ") + number.cast(pl.String)),
            columns["rating"]))
        converted["rating"] = 1 + 4 * (number - low) / (high - low)
    if timestamp_format is not None:
        text = pl.col("timestamp").str.strip_chars()
        parsed = text.str.strptime(pl.Datetime("us", "UTC"), timestamp_format, strict=False)
        converted["timestamp"] = parsed.dt.epoch("s")
        refusals.append(refusal(pl.when((text != "") & parsed.is_null()).then(
            pl.lit(f"bad_timestamp: expected {timestamp_format}, got ") + text.str.slice(0, 40)), columns["timestamp"]))
    if unescape:
        converted |= {name: pl.col(name).map_batches(unescaped, return_dtype=pl.String)
                      for name in columns if name in TEXT}
    if refusals:
        converted |= {"_reason": pl.coalesce(r for r, _ in refusals), "_field": pl.coalesce(f for _, f in refusals)}
    return out.with_columns(**converted)


def with_document(frame: pl.DataFrame, parts: list[str], max_chars: int) -> pl.DataFrame:
    text = [pl.col(p).list.join(", ") if KINDS["items"][p] == "str_list" else pl.col(p).cast(pl.String) for p in parts]
    return frame.with_columns(document=document(text, max_chars))


def mapped_items(frame: pl.DataFrame, columns: Mapping[str, str], unescape: bool, parts: list[str],
                 max_chars: int) -> pl.DataFrame:
    return with_document(canonical_columns(frame, columns, unescape), parts, max_chars)


def grouped_items(stream: Stream, source: str, parts: list[str], max_chars: int) -> Items:
    """The item table of an interactions file: one item per item_id (in order of first appearance), each field
    its first non-null value. A row whose item fields do not read is left out: its item is the rows' that do."""
    rows, _, count = read_whole(stream, source, "items")
    fields = [c for c in rows.columns if c not in ("row_ref", "item_id") and not c.startswith("_")]
    items = rows.group_by("item_id", maintain_order=True).agg(
        pl.col("row_ref").first(), *(pl.col(c).drop_nulls().first() for c in fields))
    return Items(with_document(items, parts, max_chars), quarantine_table([]), items.height,
                 {"item_rows_in_interactions": count})


def file_location(source: str, spec: Mapping[str, Any], where: str) -> tuple[str, str]:
    """(the file's name in row refs, its location) from a spec's `path` and `member`."""
    path, member = spec.get("path"), spec.get("member")
    if path is not None and not isinstance(path, str) or member is not None and not isinstance(member, str):
        raise ParamsError(f"{where}: path and member must be text")
    location = resolve(source, path)
    if member:
        return member, zip_member(location, member)
    return path or posixpath.basename(source.rstrip("/")), location


def file_settings(name: str, spec: Mapping[str, Any], where: str) -> tuple[Format, Csv]:
    """The format (given, or from the name) and how a CSV separates and quotes its cells."""
    fmt = spec.get("format")
    if fmt is not None and fmt not in get_args(Format):
        raise ParamsError(f"{where}.format: {fmt!r} is not one of {list(get_args(Format))}")
    try:
        fmt = fmt or file_format(name)
    except ValueError as err:
        raise ParamsError(f"{where}: {err}") from None
    tsv = name.lower().removesuffix(".gz").removesuffix(".zst").endswith(".tsv")
    delimiter, quote = spec.get("delimiter", "\t" if tsv else ","), spec.get("quote", '"')
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ParamsError(f"{where}.delimiter: expected one character, not {delimiter!r}")
    if quote is not None and (not isinstance(quote, str) or len(quote) != 1):
        raise ParamsError(f"{where}.quote: expected one character or null, not {quote!r}")
    return fmt, Csv(delimiter, quote)


def source_fields(table: Table, columns: Mapping[str, str], as_kind: Mapping[str, Kind], where: str
                  ) -> tuple[Field, ...]:
    """One Field per source column, typed by the fields it feeds (`as_kind`: fields read as another kind first)."""
    kinds: dict[str, set[Kind]] = {}
    required: dict[str, bool] = {}
    for name, source in columns.items():
        kinds.setdefault(source, set()).add(as_kind.get(name, KINDS[table][name]))
        required[source] = required.get(source, False) or name in REQUIRED[table]
    if mixed := {source: sorted(k) for source, k in kinds.items() if len(k) > 1}:
        source, names = next(iter(mixed.items()))
        raise ParamsError(f"{where}.columns: column {source!r} feeds fields of different kinds {names}")
    return tuple(Field(source, next(iter(k)), required[source]) for source, k in kinds.items())


def checked_spec(table: Table, spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ParamsError(f"{where}: expected a mapping (path, columns, ...), not {spec!r}")
    if unknown := sorted(set(spec) - SPEC_KEYS[table]):
        raise ParamsError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(SPEC_KEYS[table])}")
    columns = spec.get("columns") or {}
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise ParamsError(f"{where}.columns: expected a mapping of canonical field -> source column")
    if unknown := sorted(set(columns) - set(KINDS[table])):
        raise ParamsError(f"{where}.columns: unknown field(s) {unknown}; canonical: {sorted(KINDS[table])}")
    if missing := sorted(MUST_MAP[table] - set(columns)):
        raise ParamsError(f"{where}.columns: map the required field(s) {missing}")
    return spec


def interactions_stream(source: str, spec: dict[str, Any], opts: dict[str, Any], where: str) -> Stream:
    columns, rating_map, timestamp_format = spec["columns"], spec.get("rating_map"), spec.get("timestamp_format")
    if rating_map is not None and (not isinstance(rating_map, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in rating_map.values())):
        raise ParamsError(f"{where}.rating_map: expected a mapping of text -> number, not {rating_map!r}")
    scale = spec.get("rating_scale")
    if scale is not None and not (isinstance(scale, list) and len(scale) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale) and scale[0] < scale[1]):
        raise ParamsError(f"{where}.rating_scale: expected [lowest, highest], two numbers, not {scale!r}")
    if timestamp_format is not None and ("timestamp" not in columns or not isinstance(timestamp_format, str)):
        raise ParamsError(f"{where}.timestamp_format: needs a mapped timestamp column and a strptime format")
    as_text: dict[str, Kind] = {name: "str" for name, given in (("rating", rating_map), ("timestamp", timestamp_format))
                                if given}
    name, location = file_location(source, spec, where)
    fmt, csv = file_settings(name, spec, where)
    return Stream(name, source_fields("interactions", columns, as_text, where),
                  partial(canonical_columns, columns=columns, unescape=opts["unescape_html"], rating_map=rating_map,
                          timestamp_format=timestamp_format, rating_scale=tuple(scale) if scale else None),
                  opts["list_separator"], location, fmt, csv)


def plan(raw: str, catalog: str, options: dict[str, Any]) -> Plan:
    opts = settings(options, catalog, DEFAULTS)
    key = options_key(catalog)
    interactions_spec = checked_spec("interactions", opts["interactions"], f"{key}.interactions")
    items_spec = checked_spec("items", opts["items"], f"{key}.items")
    interactions = interactions_stream(raw, interactions_spec, opts, f"{key}.interactions")
    columns = items_spec["columns"]
    parts = items_spec.get("document", ["title"])
    if absent := [p for p in parts if p not in columns]:
        raise ParamsError(f"{key}.items.document: {absent} not among the mapped columns")
    grouped = items_spec.get("from")
    if grouped not in (None, "interactions"):
        raise ParamsError(f"{key}.items.from: {grouped!r}; the only table items can come from is 'interactions'")
    if grouped:
        if file_keys := sorted((FILE_KEYS - {"columns"}) & set(items_spec)):
            raise ParamsError(f"{key}.items: {file_keys} name a file, but items come from the interactions file")
        name, location, fmt, csv = interactions.path, interactions.location, interactions.format, interactions.csv
    else:
        name, location = file_location(raw, items_spec, f"{key}.items")
        fmt, csv = file_settings(name, items_spec, f"{key}.items")
    fields = source_fields("items", columns, {}, f"{key}.items")
    if grouped:
        stream = Stream(name, fields, partial(canonical_columns, columns=columns, unescape=opts["unescape_html"]),
                        opts["list_separator"], location, fmt, csv)
        return Plan(interactions=interactions, items=partial(grouped_items, stream, raw, parts,
                                                             opts["document_max_chars"]))
    items = Stream(name, fields, partial(mapped_items, columns=columns, unescape=opts["unescape_html"], parts=parts,
                                         max_chars=opts["document_max_chars"]),
                   opts["list_separator"], location, fmt, csv)
    return Plan(interactions=interactions, items=items)
