"""womens_clothing (bundled `fashion`): reviews without users; item documents carry no review text."""

from __future__ import annotations

import polars as pl
from ingest_slices import RAW, ROOT

from pipelines import catalogs
from pipelines.common.params import catalog_block

OPTIONS = catalog_block("fashion", ROOT / "params.yaml")["ingest"]


def test_reviews_become_interactions_and_clothing_ids_items(tmp_path):
    reviews = pl.read_parquet(RAW / "womens_clothing_reviews.parquet").head(1500)
    reviews.write_parquet(tmp_path / OPTIONS["reviews"])
    source = catalogs.load("fashion", tmp_path, OPTIONS)
    assert source.raw == {"items": reviews["Clothing ID"].n_unique(), "interactions": reviews.height}
    # row_ref n is the n-th review
    tenth = source.interactions.slice(9, 1).to_pylist()[0]
    assert tenth["row_ref"] == f"{OPTIONS['reviews']}:10"
    assert (tenth["summary"], tenth["text"], tenth["rating"]) == (
        reviews["Title"][9], reviews["Review Text"][9], float(reviews["Rating"][9]))
    assert source.interactions["user_id"].null_count == source.interactions["timestamp"].null_count == 1500
    dress = next(i for i in source.items.to_pylist() if i["item_id"] == "1080")
    assert dress["title"] == dress["document"] == "Dresses — Dresses (General)"
    assert dress["categories"] == ["General", "Dresses", "Dresses"]
    # no review text leaks into what gets embedded: the pairs stage adds training reviews only
    documents = set(source.items["document"].to_pylist())
    assert not documents & set(reviews["Review Text"].drop_nulls()) and not documents & set(reviews["Title"])
    assert max(map(len, documents)) < 60
