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

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.catalogs.readers import Field, Kind, Rows, read
from pipelines.catalogs.source import Source, Table, canonical, check_items, document, settings
from pipelines.common.schemas import INTERACTIONS

DEFAULTS = {"interactions": None, "items": None, "document_max_chars": 1200, "list_separator": "|"}
KINDS: dict[Table, dict[str, Kind]] = {
    "interactions": {"item_id": "str", "rating": "float", "user_id": "str", "timestamp": "int", "summary": "str",
                     "text": "str"},
    "items": {"item_id": "str", "title": "str", "creator": "str", "description": "str", "categories": "str_list",
              "year": "int", "price": "float", "url": "str"},
}
REQUIRED: dict[Table, set[str]] = {"interactions": {"item_id", "rating"}, "items": {"item_id"}}  # a row needs a value
MUST_MAP: dict[Table, set[str]] = {"interactions": {"item_id", "rating"}, "items": {"item_id", "title"}}


def read_mapped(raw: Path, catalog: str, table: Table, spec: dict[str, Any], list_separator: str) -> Rows:
    """Read `spec["path"]` and rename its mapped columns to the canonical names."""
    where = f"ingest.catalogs.{catalog}.{table}"
    columns: dict[str, str] = spec.get("columns") or {}
    unknown = set(columns) - set(KINDS[table])
    if unknown:
        raise ValueError(f"{where}.columns: unknown field(s) {sorted(unknown)}; canonical: {sorted(KINDS[table])}")
    if missing := MUST_MAP[table] - set(columns):
        raise ValueError(f"{where}.columns: map the required field(s) {sorted(missing)}")
    fields = [Field(source, KINDS[table][name], name in REQUIRED[table]) for name, source in columns.items()]
    rows = read(raw / spec["path"], spec["path"], fields, table, list_separator)
    return Rows(rows.frame.select("row_ref", *(pl.col(s).alias(n) for n, s in columns.items())), rows.rejected,
                rows.count)


def load(raw: Path, catalog: str, options: dict[str, Any]) -> Source:
    opts = settings(options, catalog, DEFAULTS)
    interactions = read_mapped(raw, catalog, "interactions", opts["interactions"], opts["list_separator"])
    items = read_mapped(raw, catalog, "items", opts["items"], opts["list_separator"])
    parts = opts["items"].get("document", ["title"])
    if absent := [p for p in parts if p not in items.frame.columns]:
        raise ValueError(f"ingest.catalogs.{catalog}.items.document: {absent} not among the mapped columns")
    text = [pl.col(p).list.join(", ") if KINDS["items"][p] == "str_list" else pl.col(p).cast(pl.String) for p in parts]
    mapped = items.frame.with_columns(document=document(text, opts["document_max_chars"]))
    kept, rejected = check_items(mapped, catalog)
    return Source(
        items=kept,
        interactions=canonical(interactions.frame, INTERACTIONS, f"{catalog} interactions"),
        quarantine=pa.concat_tables([interactions.rejected, items.rejected, rejected]),
        raw={"items": items.count, "interactions": interactions.count},
    )
