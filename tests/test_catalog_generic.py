"""Adding a catalog: a params mapping for the `generic` plug-in (README "Adding a catalog"), or a
module registered in pipelines/catalogs/PLUGINS."""

from __future__ import annotations

import importlib
import inspect

import polars as pl
import pytest
from ingest_slices import FIXTURES, ingest, ingest_params

from pipelines import catalogs
from pipelines.catalogs.source import Plan

RAW = FIXTURES / "generic"
# The README's example mapping, verbatim in shape.
BOOKS = {
    "plugin": "generic",
    "interactions": {"path": "reviews.csv", "columns": {
        "item_id": "book", "rating": "stars", "user_id": "reader", "timestamp": "posted", "summary": "headline",
        "text": "body"}},
    "items": {"path": "products.jsonl", "columns": {
        "item_id": "sku", "title": "name", "creator": "author", "description": "blurb", "categories": "tags",
        "year": "published", "price": "price_eur"},
        "document": ["title", "creator", "categories", "description"]},
}


def test_a_params_mapping_is_a_whole_catalog():
    result = ingest("books", RAW, ingest_params("books", BOOKS))
    kindred = result.items.to_pylist()[2]
    assert kindred == {
        "item_id": "BK-003", "catalog": "books", "title": "Kindred", "creator": "Octavia E. Butler",
        "description": "A modern woman is pulled back in time to antebellum Maryland.",
        "categories": ["science fiction", "historical"], "year": 1979, "price": 10.0, "url": None,
        "attributes": None,
        "document": "Kindred [SEP] Octavia E. Butler [SEP] science fiction, historical [SEP] A modern woman is "
                    "pulled back in time to antebellum Maryland."}
    assert result.interactions["row_ref"].to_pylist() == [f"reviews.csv:{n}" for n in (1, 2, 3, 7, 8, 9)]
    reasons = dict(zip(result.quarantine["row_ref"].to_pylist(), result.quarantine["reason"].to_pylist()))
    assert reasons["reviews.csv:6"] == "wrong_type: expected float, got five"
    assert reasons["products.jsonl:4"] == "missing_title"
    assert reasons["products.jsonl:5"].startswith("wrong_type: expected str_list")
    assert reasons["reviews.csv:5"] == "unknown_item"


def test_generic_reads_parquet_too(tmp_path):
    pl.read_csv(RAW / "reviews.csv").write_parquet(tmp_path / "reviews.parquet")
    (tmp_path / "products.jsonl").write_bytes((RAW / "products.jsonl").read_bytes())
    spec = {**BOOKS, "interactions": {**BOOKS["interactions"], "path": "reviews.parquet"}}
    parquet = ingest("books", tmp_path, ingest_params("books", spec))
    csv = ingest("books", RAW, ingest_params("books", BOOKS))
    assert parquet.interactions["row_ref"].to_pylist() == [r.replace(".csv", ".parquet") for r in
                                                           csv.interactions["row_ref"].to_pylist()]
    assert parquet.interactions.drop_columns("row_ref").equals(csv.interactions.drop_columns("row_ref"))


@pytest.mark.parametrize("change, message", [
    ({"interactions": {"path": "reviews.csv", "columns": {"item_id": "book"}}}, r"map the required field\(s\) \['rating'\]"),
    ({"items": {"path": "products.jsonl", "columns": {"item_id": "sku", "name": "name"}}}, r"unknown field\(s\) \['name'\]"),
    ({"items": {**BOOKS["items"], "document": ["title", "url"]}}, r"\['url'\] not among the mapped columns"),
    ({"colour": "blue"}, r"unknown option\(s\) \['colour'\]"),
])
def test_mapping_mistakes_are_errors_naming_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        catalogs.load("books", RAW, {**BOOKS, **change})


def test_every_registered_plugin_is_a_module_with_plan():
    for name, module in catalogs.PLUGINS.items():
        plan = importlib.import_module(module).plan
        assert list(inspect.signature(plan).parameters) == ["raw", "catalog", "options"], name
        assert inspect.signature(plan).return_annotation in (Plan, "Plan"), name
    with pytest.raises(ValueError, match="'spark' is not one of"):
        catalogs.load("x", RAW, {"plugin": "spark"})
