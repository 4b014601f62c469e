"""Small catalogs get test and validation sides big enough to read (pairs.min_*_queries), and a warning where
a shipped CI stays wider than +-0.1 (issue 26, point 3)."""

from __future__ import annotations

from dataclasses import replace

from pipelines.common.split import side
from pipelines.evaluation.scores import wide_intervals
from pipelines.pairs import PairsParams, sized_fractions

PARAMS = PairsParams(seed=42, test_fraction=0.05, validation_fraction=0.03, min_rating=4.0, queries="reviews",
                     review_min_words=20, hard_query_tokens=20, co_liked_per_user=20, co_liked_max_pairs=20000,
                     document_review_chars=0, train_hard_queries=False, min_test_queries=200,
                     min_validation_queries=100)


def sides(groups: list[str], params: PairsParams) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"train": set(), "validation": set(), "test": set()}
    for group in groups:
        out[side(group, params.seed, params.test_fraction, params.validation_fraction)].add(group)
    return out


def test_a_small_catalog_gets_its_minimum_sides_and_keeps_every_earlier_test_query():
    groups = [f"review {i}" for i in range(1000)]
    sized = sized_fractions(groups, PARAMS)
    before, after = sides(groups, PARAMS), sides(groups, sized)
    assert len(before["test"]) < 200 and len(after["test"]) == 200 and len(after["validation"]) == 100
    assert before["test"] <= after["test"]  # raising a fraction only moves groups out of train
    assert sized_fractions(list(reversed(groups)), PARAMS) == sized  # the order of the rows does not matter


def test_a_large_catalog_keeps_its_fractions():
    groups = [f"review {i}" for i in range(20000)]
    assert sized_fractions(groups, PARAMS) == PARAMS


def test_the_two_sides_take_at_most_half_of_a_tiny_catalog_test_first():
    groups = [f"review {i}" for i in range(300)]
    after = sides(groups, sized_fractions(groups, PARAMS))
    natural_validation = len(sides(groups, replace(PARAMS, test_fraction=sized_fractions(groups, PARAMS).test_fraction))[
        "validation"])
    assert len(after["test"]) == 150 and len(after["validation"]) == natural_validation < 20
    assert sized_fractions([], PARAMS) == PARAMS
    no_minimum = replace(PARAMS, min_test_queries=0, min_validation_queries=0)
    assert sized_fractions(groups, no_minimum) == no_minimum


def test_a_shipped_ci_wider_than_the_limit_is_a_warning():
    metrics = {"test": {"queries": 40, "shipped": {"recall@10_ci_low": 0.31, "recall@10_ci_high": 0.58}},
               "test_hard": {"queries": 900, "shipped": {"recall@10_ci_low": 0.40, "recall@10_ci_high": 0.46}}}
    assert wide_intervals(metrics, ["test", "test_hard"], 0.1) == [
        "test: the shipped Recall@10 CI [0.310, 0.580] is wider than +-0.1 (40 queries): add queries "
        "(pairs.min_test_queries)"]
