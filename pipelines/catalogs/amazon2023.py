"""Amazon Reviews 2023 (McAuley lab): `reviews/<Category>.jsonl` and `meta/meta_<Category>.jsonl`.

Items are the meta lines, keyed by parent_asin (reviews point at it too); document =
"Title [SEP] store [SEP] features", cut to `document_max_chars`. Interactions are the reviews
(summary = review title, text = review body); timestamps are milliseconds in the source and
seconds here. Each bad line is quarantined with its file and line (pipelines/catalogs/readers.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.catalogs.readers import Field, read
from pipelines.catalogs.source import Source, attributes, canonical, check_items, document, settings
from pipelines.common.schemas import INTERACTIONS

DEFAULTS = {"category": None, "document_max_chars": 1200}
REVIEW_FIELDS = [
    Field("rating", "float", required=True),
    Field("title"),
    Field("text"),
    Field("parent_asin", required=True),
    Field("user_id", required=True),
    Field("timestamp", "int", required=True),
]
META_FIELDS = [
    Field("parent_asin", required=True),
    Field("title"),
    Field("store"),
    Field("features", "str_list"),
    Field("description", "str_list"),
    Field("categories", "str_list"),
    Field("main_category"),
    Field("average_rating", "float"),
    Field("rating_number", "int"),
    Field("price", "json"),  # a number, null, or text such as "None" in the published files
    Field("details", "json"),
]


def item_attributes(meta: pl.DataFrame) -> pl.Series:
    return pl.Series([
        attributes({"main_category": m["main_category"], "average_rating": m["average_rating"],
                    "rating_number": m["rating_number"],
                    "details": json.loads(m["details"]) if m["details"] else None})
        for m in meta.iter_rows(named=True)
    ], dtype=pl.String)


def load(raw: Path, catalog: str, options: dict[str, Any]) -> Source:
    opts = settings(options, catalog, DEFAULTS)
    reviews_name, meta_name = f"reviews/{opts['category']}.jsonl", f"meta/meta_{opts['category']}.jsonl"
    reviews = read(raw / reviews_name, reviews_name, REVIEW_FIELDS, "interactions")
    meta = read(raw / meta_name, meta_name, META_FIELDS, "items")
    interactions = reviews.frame.select(
        "row_ref", "user_id", "rating", "text", item_id="parent_asin", summary="title",
        timestamp=pl.col("timestamp") // 1000)
    items = meta.frame.with_columns(
        item_id="parent_asin",
        creator="store",
        description=pl.col("description").list.join(" "),
        price=pl.col("price").str.strip_chars('"$ ').str.replace_all(",", "").cast(pl.Float64, strict=False),
        url=pl.format("https://www.amazon.com/dp/{}", "parent_asin"),
        attributes=item_attributes(meta.frame),
        document=document([pl.col("title"), pl.col("store"), pl.col("features").list.join(" ")],
                          opts["document_max_chars"]),
    )
    kept, rejected = check_items(items, catalog)
    return Source(
        items=kept,
        interactions=canonical(interactions, INTERACTIONS, f"{catalog} interactions"),
        quarantine=pa.concat_tables([reviews.rejected, meta.rejected, rejected]),
        raw={"items": meta.count, "interactions": reviews.count},
    )
