"""amazon2023: the published JSONL schema (fixture with malformed lines) onto the canonical tables."""

from __future__ import annotations

import json

import pytest
from ingest_slices import FIXTURES, ingest, ingest_params

from pipelines import catalogs

RAW = FIXTURES / "amazon2023"
OPTIONS = {"plugin": "amazon2023", "category": "All_Beauty", "document_max_chars": 1200}


def quarantine_by_line(quarantine) -> dict[str, tuple[str, str | None, str]]:
    return {ref: (source, field, reason.split(":")[0]) for source, ref, field, reason in zip(
        *(quarantine[c].to_pylist() for c in ("source", "row_ref", "field", "reason")))}


def test_items_and_reviews_map_onto_the_canonical_tables():
    source = catalogs.load("beauty", RAW, OPTIONS)
    items = {i["item_id"]: i for i in source.items.to_pylist()}
    assert list(items) == ["B01CUPMQZE", "B076WQZGPM", "B000050B6U", "B088SZDGXG"]
    salt = items["B000050B6U"]
    assert salt["document"] == ("Lavender Bath Salt - Dead Sea Salt with Essential Oil, 32 oz [SEP] Relax Spa "
                                "[SEP] Relaxing lavender scent Made with real Dead Sea salt")
    assert (salt["creator"], salt["price"], salt["categories"]) == (
        "Relax Spa", 19.99, ["Beauty & Personal Care", "Bath & Body"])
    assert json.loads(salt["attributes"])["details"] == {"Brand": "Relax Spa"}
    assert [items[i]["price"] for i in ("B076WQZGPM", "B088SZDGXG")] == [None, 24.5]  # "None", "$24.50"
    assert items["B01CUPMQZE"]["document"] == "Howard LC0008 Leather Conditioner, 8-Ounce (4-Pack) [SEP] Howard Products"
    first = source.interactions.slice(0, 1).to_pylist()[0]
    assert first == {"row_ref": "reviews/All_Beauty.jsonl:1", "user_id": "AGKHLEW2SOWHNMFQIJGBECAF7INQ",
                     "item_id": "B01CUPMQZE", "rating": 5.0, "timestamp": 1588687728,
                     "summary": "Such a lovely scent but not overpowering.",
                     "text": "This conditioner is really nice. It goes on easily and the leather looks new again."}


def test_document_is_cut_to_the_configured_length():
    source = catalogs.load("beauty", RAW, {**OPTIONS, "document_max_chars": 40})
    assert max(len(d) for d in source.items["document"].to_pylist()) == 40


# file, line, rejecting table/step, field ("-": the whole line), reason code: as the fixture was written
EXPECTED = """
meta 5 items/read - not_json
meta 6 items/read parent_asin missing_field
meta 7 items/read features wrong_type
meta 8 items/unique item_id duplicate_item_id
meta 9 items/title title missing_title
meta 11 items/read - not_utf8
reviews 4 interactions/duplicate item_id duplicate_user_item
reviews 5 interactions/read - not_json
reviews 6 interactions/user_positives user_id too_few_user_positives
reviews 7 interactions/read user_id missing_field
reviews 8 interactions/language text wrong_language
reviews 9 interactions/read rating wrong_type
reviews 10 interactions/read - not_object
reviews 11 interactions/user_positives user_id too_few_user_positives
reviews 12 interactions/rating rating rating_below_min
reviews 13 interactions/tokens text too_few_tokens
reviews 14 interactions/item item_id unknown_item
reviews 15 interactions/item item_id unknown_item
reviews 20 interactions/read - not_utf8
"""
FILES = {"meta": "meta/meta_All_Beauty.jsonl", "reviews": "reviews/All_Beauty.jsonl"}


def test_every_malformed_line_and_filtered_review_is_accounted_for():
    result = ingest("beauty", RAW, ingest_params("beauty", OPTIONS))
    expected = {f"{FILES[file]}:{line}": (source, None if field == "-" else field, code)
                for file, line, source, field, code in map(str.split, EXPECTED.strip().splitlines())}
    assert quarantine_by_line(result.quarantine) == expected
    assert result.interactions["row_ref"].to_pylist() == [f"{FILES['reviews']}:{n}" for n in (1, 2, 3, 16, 17, 18)]
    assert result.counts["interactions"]["raw"] == 19 and result.counts["items"]["raw"] == 10


def test_missing_category_and_missing_files_are_errors(tmp_path):
    with pytest.raises(ValueError, match=r"catalogs.beauty.ingest: missing option\(s\) \['category'\]"):
        catalogs.load("beauty", RAW, {"plugin": "amazon2023"})
    with pytest.raises(FileNotFoundError, match="reviews/Toys.jsonl"):
        catalogs.load("toys", RAW, {**OPTIONS, "category": "Toys"})
