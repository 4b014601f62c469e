"""Ranking metrics against hand-computed cases, and the paired bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.common.bootstrap import interval, paired_difference, resample_weights
from pipelines.common.metrics import ndcg_at, per_query, recall_at, reciprocal_rank_at

RANKING = ["a", "b", "c", "d"]
BINARY = {"b": 1, "d": 1, "z": 1}  # z is relevant but never retrieved


def test_recall_counts_relevant_items_in_top_k():
    assert recall_at(RANKING, BINARY, 1) == 0
    assert recall_at(RANKING, BINARY, 2) == pytest.approx(1 / 3)
    assert recall_at(RANKING, BINARY, 100) == pytest.approx(2 / 3)


def test_reciprocal_rank_of_first_hit_within_cutoff():
    assert reciprocal_rank_at(RANKING, BINARY, 10) == 0.5
    assert reciprocal_rank_at(RANKING, BINARY, 1) == 0
    assert reciprocal_rank_at(RANKING, {"a": 1}, 10) == 1


def test_ndcg_binary_and_graded():
    # hits at ranks 2 and 4; ideal puts the three relevant items at ranks 1-3
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at(RANKING, BINARY, 4) == pytest.approx(dcg / ideal)  # 0.4982
    # graded: gains 2 at rank 1 and 3 at rank 3 -> (2 + 3/2) / (3 + 2/log2 3) = 0.8212
    assert ndcg_at(["a", "b", "c"], {"a": 2, "c": 3}, 3) == pytest.approx(3.5 / (3 + 2 / math.log2(3)))
    assert ndcg_at(["x", "y"], {"x": 1}, 10) == 1.0


def test_per_query_vectors_and_errors():
    got = per_query([RANKING, ["d"]], [BINARY, {"d": 1}], ["recall@2", "mrr@10", "ndcg@10"])
    assert got["recall@2"].tolist() == pytest.approx([1 / 3, 1.0])
    assert got["mrr@10"].tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="precision@5"):
        per_query([RANKING], [BINARY], ["precision@5"])
    with pytest.raises(ValueError, match="without relevant"):
        recall_at(RANKING, {"a": 0}, 10)


def test_bootstrap_interval_width_and_pairing():
    rng = np.random.default_rng(3)
    a = (rng.random(400) < 0.3).astype(float)
    weights = resample_weights(len(a), 2000, seed=1)
    single = interval(a, weights)
    assert single.mean == pytest.approx(a.mean()) and single.low < single.mean < single.high
    # binomial: full width 2 * 1.96 * sqrt(p(1-p)/n) ~ 0.09
    assert 0.07 < single.high - single.low < 0.11
    # b differs from a by exactly 0.02 on every query: unpaired CIs overlap, the paired one is a point
    diff = paired_difference(a + 0.02, a, weights)
    assert (diff.low, diff.high) == (pytest.approx(0.02), pytest.approx(0.02)) and diff.excludes_zero()
    assert interval(a + 0.02, weights).low < single.high
    assert np.array_equal(weights, resample_weights(len(a), 2000, seed=1))
    with pytest.raises(ValueError, match="align"):
        paired_difference(a, a[:3], weights)
