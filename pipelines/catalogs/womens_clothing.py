"""Women's Clothing E-Commerce Reviews (the bundled `fashion` catalog): reviews, no user ids.

Items are the Clothing IDs, titled by class, department and division ("Dresses — Dresses
(General)"). Their document holds only those catalog fields: the pairs stage appends review text
from the training split alone, so no test review leaks into what gets embedded. Interactions are
the reviews (summary = review title, text = review body), with no user and no timestamp.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.catalogs.readers import Field, read
from pipelines.catalogs.source import Items, Plan, Stream, quarantine_table, settings

DEFAULTS = {"reviews": "womens_clothing_reviews.parquet", "document_max_chars": 1200}
FIELDS = (
    Field("Clothing ID", "int", required=True),
    Field("Rating", "float", required=True),
    Field("Title"),
    Field("Review Text"),
    Field("Division Name"),
    Field("Department Name"),
    Field("Class Name"),
)


def review_rows(reviews: pl.DataFrame) -> pl.DataFrame:
    return reviews.select(item_id=pl.col("Clothing ID").cast(pl.String), rating="Rating", summary="Title",
                          text="Review Text")


def clothing_items(path: Path, name: str, max_chars: int) -> Items:
    """An item is described by its first review that names each field (reviews agree in this file)."""
    reviews = read(path, name, FIELDS, "interactions")
    division, department, kind = pl.col("Division Name"), pl.col("Department Name"), pl.col("Class Name")
    items = reviews.frame.with_columns(item_id=pl.col("Clothing ID").cast(pl.String)).group_by(
        "item_id", maintain_order=True).agg(
        pl.col("row_ref").first(), *(c.drop_nulls().first() for c in (division, department, kind)))
    title = pl.format("{} — {} ({})", kind, department, division)
    items = items.with_columns(
        title=title,
        categories=pl.concat_list(division, department, kind),
        attributes=pl.struct(division=division, department=department, **{"class": kind}).struct.json_encode(),
        document=title.str.slice(0, max_chars),
    )
    return Items(items, quarantine_table([]), items.height)


def plan(raw: str, catalog: str, options: dict[str, Any]) -> Plan:
    opts = settings(options, catalog, DEFAULTS)
    return Plan(interactions=Stream(opts["reviews"], FIELDS, review_rows),
                items=partial(clothing_items, Path(raw) / opts["reviews"], opts["reviews"], opts["document_max_chars"]))
