"""The filter rules (pipelines/ingest/filters.py) and their Polars spelling agree row by row."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest
from ingest_slices import FILTERS

from pipelines.common.schemas import INTERACTIONS
from pipelines.ingest import polars_engine
from pipelines.ingest.filters import (
    ORDER,
    TOKEN_PATTERN,
    Rules,
    earliest_first,
    language_reason,
    languages,
    row_rejection,
    token_count,
)
from pipelines.ingest.stage import check_engine

RULES = Rules.from_params(FILTERS)
TRICKY = ["", "one", "two  words", "tab\tand\nnewline\r\n", "nbsp\u00a0joins", "em\u2003space",
          "unit\x1fsep", "  lead and trail  ", "emoji 🙂 counts", "ünïcödé wörds hère"]


def test_tokens_are_counted_the_same_by_python_and_polars():
    polars_counts = pl.Series(TRICKY).str.count_matches(TOKEN_PATTERN).to_list()
    assert polars_counts == [token_count(None, t) for t in TRICKY]
    assert token_count("two words", None) + token_count(None, "and three more") == token_count("two words",
                                                                                                 "and three more")


def row(**values) -> dict:
    base = {"row_ref": "f:1", "user_id": "u", "item_id": "i", "rating": 5.0, "timestamp": 1, "summary": None,
            "text": None, ORDER: 0}
    return {**base, **values}


def test_row_rules_in_order_and_rows_without_text_skip_the_token_rule():
    assert row_rejection(row(rating=3.5, text="too short"), RULES, known_item=False) == "rating"
    assert row_rejection(row(text="too short"), RULES, known_item=False) == "tokens"
    assert row_rejection(row(summary="Great", text="fits well, true to size"), RULES, known_item=False) == "item"
    assert row_rejection(row(), RULES, known_item=True) is None  # a rating with no text
    assert row_rejection(row(rating=4.0, summary="Great", text="fits well, true to size"), RULES, True) is None


def test_language_reason_names_the_detected_language():
    detected = languages([None, "This dress fits perfectly and the fabric is soft.",
                          "Cette robe est magnifique et la taille est parfaite."])
    assert detected == [None, "en", "fr"]
    assert [language_reason(d, RULES) for d in detected] == [None, None, "wrong_language: fr"]


def test_earliest_first_orders_by_time_then_file_order_with_unknown_times_last():
    rows = [row(timestamp=None, **{ORDER: 0}), row(timestamp=5, **{ORDER: 3}), row(timestamp=5, **{ORDER: 1}),
            row(timestamp=2, **{ORDER: 2})]
    assert [r[ORDER] for r in sorted(rows, key=earliest_first)] == [2, 1, 3, 0]


def test_polars_set_rules_keep_the_earliest_duplicate_and_users_with_enough_positives():
    keys = pl.DataFrame([("u", "i", 9, 1), ("u", "i", 3, 2), ("u", "i", 3, 3), ("u", "i", None, 4), ("u", "j", None, 5),
                         ("u", "j", None, 6), ("v", "i", 1, 7), ("v", "i", 0, 8)], orient="row",
                        schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Int64, ORDER: pl.Int64})
    rules = Rules.from_params({**FILTERS, "min_user_positives": 2})
    verdicts = dict(polars_engine.set_rules(keys, rules).iter_rows())
    # u keeps 2 (earliest of i, ties by file order) and 5 (first of j); v has one positive left
    assert verdicts == {1: "duplicate", 3: "duplicate", 4: "duplicate", 6: "duplicate", 7: "duplicate",
                        8: "user_positives"}


def test_polars_row_rules_match_the_python_rules():
    rows = pl.from_arrow(pa.Table.from_pylist([
        row(row_ref="f:1", rating=3.0, text="too short"), row(row_ref="f:2", text="too short"),
        row(row_ref="f:3", item_id="gone", summary="Great", text="fits well, true to size"),
        row(row_ref="f:4", summary="Superbe", text="la robe est magnifique et la taille parfaite"),
        row(row_ref="f:5", summary="Great", text="fits well, true to size"), row(row_ref="f:6"),
    ], schema=INTERACTIONS)).with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ORDER))
    judged = polars_engine.row_rules(rows, known_items(pa.array(["i"])), RULES)
    assert judged["_step"].to_list() == ["rating", "tokens", "item", "language", None, None]
    assert judged["_reason"].to_list()[3] == "wrong_language: fr"


def known_items(ids: pa.Array) -> polars_engine.KnownItems:
    by_hash = polars_engine.KnownItems.by_hash(ids, slice_rows=100)
    return polars_engine.KnownItems(pl.from_arrow(by_hash))  # type: ignore[arg-type]


@pytest.mark.parametrize("hash_collision", [False, True])
def test_known_items_match_set_membership(hash_collision):
    kept = pl.Series([f"B{i:09d}" for i in range(0, 3000, 3)] + ["", "é"])
    asked = pl.Series([f"B{i:09d}" for i in range(3000, -5, -1)] + ["é", "", "B", "B000000000 "])
    known = known_items(kept.to_arrow())
    if hash_collision:  # the fallback that two kept ids with one hash take
        known.sorted_ids = kept.sort()
    assert known.contains(asked).to_list() == asked.is_in(kept.implode()).to_list()
    assert not known_items(pa.array([], pa.string())).contains(asked).any()


@pytest.mark.parametrize("change, message", [
    ({"min_ratings": 4}, "unknown key"),
    ({"min_tokens": "5"}, "min_tokens"),
    ({"min_user_positives": True}, "min_user_positives"),
    ({"language": "english"}, "not a CLD2 language code"),
])
def test_bad_filter_params_are_refused_by_name(change, message):
    params = {**FILTERS, **change}
    if "min_ratings" in change:
        params.pop("min_rating")
    with pytest.raises(ValueError, match=message):
        Rules.from_params(params)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="'spark' is not one of"):
        check_engine("spark")
