"""Paired bootstrap confidence intervals over queries.

All systems are scored on the same resamples of the query set (one weight matrix), so a difference
between two systems is resampled pairwise: query difficulty, shared by both, cancels out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapParams:
    """params `<stage>.bootstrap`: how many resamples, the CI's confidence, the resampling seed."""
    resamples: int
    confidence: float
    seed: int


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high}


def resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) weights: how often each query is drawn in each resample, over n."""
    if n < 1 or resamples < 1:
        raise ValueError(f"need at least one query and one resample, not n={n}, resamples={resamples}")
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples)
    return counts / n


def interval(values: np.ndarray, weights: np.ndarray, confidence: float = 0.95) -> Interval:
    """Mean of per-query `values` with its percentile bootstrap interval."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    if weights.shape[1] != len(values):
        raise ValueError(f"{len(values)} values for weights over {weights.shape[1]} queries")
    means = weights @ values
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(values.mean()), float(low), float(high))


def paired_difference(a: np.ndarray, b: np.ndarray, weights: np.ndarray, confidence: float = 0.95) -> Interval:
    """Mean of a - b (same queries, same order) with its paired bootstrap interval."""
    if a.shape != b.shape:
        raise ValueError(f"paired values must align: {a.shape} vs {b.shape}")
    return interval(a - b, weights, confidence)
