"""Amazon Reviews 2023 (McAuley lab): `reviews/<Category>.jsonl` and `meta/meta_<Category>.jsonl`.

Items are the meta lines, keyed by parent_asin (reviews point at it too); document =
"Title [SEP] store [SEP] features", cut to `document_max_chars`. Interactions are the reviews
(summary = review title, text = review body); timestamps are milliseconds in the source and
seconds here. Each bad line is quarantined with its file and line (pipelines/catalogs/readers.py).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import polars as pl

from pipelines.catalogs.readers import Field
from pipelines.catalogs.source import Plan, Stream, document, settings

DEFAULTS = {"category": None, "document_max_chars": 1200}
REVIEW_FIELDS = (
    Field("rating", "float", required=True),
    Field("title"),
    Field("text"),
    Field("parent_asin", required=True),
    Field("user_id", required=True),
    Field("timestamp", "int", required=True),
)
META_FIELDS = (
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
)


def item_attributes() -> pl.Expr:
    """The display fields as one JSON object, keys sorted, the empty ones left out (vectorized: the
    meta file has as many lines as the catalog has items)."""
    def member(key: str, value: pl.Expr, present: pl.Expr) -> pl.Expr:
        return pl.when(present).then(pl.lit(f'"{key}":') + value)

    category = pl.col("main_category")
    category_json = pl.struct(c=category).struct.json_encode().str.slice(5).str.head(-1)  # {"c":"..."} -> "..."
    members = [
        member("average_rating", pl.col("average_rating").cast(pl.String), pl.col("average_rating").is_not_null()),
        member("details", pl.col("details"), ~pl.col("details").is_in(["{}", "[]", '""', "null"]).fill_null(True)),
        member("main_category", category_json, category.is_not_null() & (category != "")),
        member("rating_number", pl.col("rating_number").cast(pl.String), pl.col("rating_number").is_not_null()),
    ]
    return pl.lit("{") + pl.concat_str(members, separator=",", ignore_nulls=True) + pl.lit("}")


def review_rows(reviews: pl.DataFrame) -> pl.DataFrame:
    return reviews.select("user_id", "rating", "text", item_id="parent_asin", summary="title",
                          timestamp=pl.col("timestamp") // 1000)


def meta_items(meta: pl.DataFrame, max_chars: int) -> pl.DataFrame:
    return meta.with_columns(
        item_id="parent_asin",
        creator="store",
        description=pl.col("description").list.join(" "),
        price=pl.col("price").str.strip_chars('"$ ').str.replace_all(",", "").cast(pl.Float64, strict=False),
        url=pl.format("https://www.amazon.com/dp/{}", "parent_asin"),
        attributes=item_attributes(),
        document=document([pl.col("title"), pl.col("store"), pl.col("features").list.join(" ")], max_chars),
    )


def plan(raw: str, catalog: str, options: dict[str, Any]) -> Plan:
    opts = settings(options, catalog, DEFAULTS)
    return Plan(
        interactions=Stream(f"reviews/{opts['category']}.jsonl", REVIEW_FIELDS, review_rows),
        items=Stream(f"meta/meta_{opts['category']}.jsonl", META_FIELDS,
                     partial(meta_items, max_chars=opts["document_max_chars"])),
    )
