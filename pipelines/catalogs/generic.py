"""Any Parquet / CSV / JSONL catalog, its columns mapped onto the canonical fields in params.yaml:

    my_catalog:
      plugin: generic
      interactions:
        path: shop/reviews.csv                # under --raw; .parquet, .csv or .jsonl
        columns: {item_id: product, rating: stars, user_id: reviewer, timestamp: time,
                  summary: headline, text: body}
      items:
        path: shop/products.jsonl
        columns: {item_id: id, title: name, creator: brand, description: about, categories: tags}
        document: [title, creator, description]   # canonical fields joined by " [SEP] "
      document_max_chars: 1200
      list_separator: "|"                     # splits a text `categories` column (CSV)

item_id and rating (interactions) and item_id (items) are required; timestamps are unix seconds.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.catalogs.readers import Field
from pipelines.catalogs.source import Kind, Plan, Stream, Table, document, settings

DEFAULTS = {"interactions": None, "items": None, "document_max_chars": 1200, "list_separator": "|"}
KINDS: dict[Table, dict[str, Kind]] = {
    "interactions": {"item_id": "str", "rating": "float", "user_id": "str", "timestamp": "int", "summary": "str",
                     "text": "str"},
    "items": {"item_id": "str", "title": "str", "creator": "str", "description": "str", "categories": "str_list",
              "year": "int", "price": "float", "url": "str"},
}
REQUIRED: dict[Table, set[str]] = {"interactions": {"item_id", "rating"}, "items": {"item_id"}}  # a row needs a value
MUST_MAP: dict[Table, set[str]] = {"interactions": {"item_id", "rating"}, "items": {"item_id", "title"}}


def renamed(frame: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    return frame.select(pl.col(source).alias(name) for name, source in columns.items())


def with_document(frame: pl.DataFrame, columns: dict[str, str], parts: list[str], max_chars: int) -> pl.DataFrame:
    text = [pl.col(p).list.join(", ") if KINDS["items"][p] == "str_list" else pl.col(p).cast(pl.String) for p in parts]
    return renamed(frame, columns).with_columns(document=document(text, max_chars))


def stream(catalog: str, table: Table, spec: dict[str, Any], list_separator: str) -> tuple[Stream, dict[str, str]]:
    """The stream of `spec["path"]`, reading the mapped columns; and the mapping (canonical -> source)."""
    where = f"ingest.catalogs.{catalog}.{table}"
    columns: dict[str, str] = spec.get("columns") or {}
    unknown = set(columns) - set(KINDS[table])
    if unknown:
        raise ValueError(f"{where}.columns: unknown field(s) {sorted(unknown)}; canonical: {sorted(KINDS[table])}")
    if missing := MUST_MAP[table] - set(columns):
        raise ValueError(f"{where}.columns: map the required field(s) {sorted(missing)}")
    fields = tuple(Field(source, KINDS[table][name], name in REQUIRED[table]) for name, source in columns.items())
    return Stream(spec["path"], fields, partial(renamed, columns=columns), list_separator), columns


def plan(raw: Path, catalog: str, options: dict[str, Any]) -> Plan:
    opts = settings(options, catalog, DEFAULTS)
    interactions, _ = stream(catalog, "interactions", opts["interactions"], opts["list_separator"])
    items, columns = stream(catalog, "items", opts["items"], opts["list_separator"])
    parts = opts["items"].get("document", ["title"])
    if absent := [p for p in parts if p not in columns]:
        raise ValueError(f"ingest.catalogs.{catalog}.items.document: {absent} not among the mapped columns")
    document_map = partial(with_document, columns=columns, parts=parts, max_chars=opts["document_max_chars"])
    return Plan(interactions=interactions, items=replace(items, map=document_map))
