"""Means and percentile bootstrap CIs per system, and the shipped system minus every other (paired CIs).

All systems of a set are scored on the same resamples of its queries, so a difference is resampled
pairwise (pipelines.common.bootstrap): a paired CI excluding 0 is a significant difference. Numbers are
flat (`recall@10`, `recall@10_ci_low`, `recall@10_ci_high`) so that `dvc metrics` reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.common.bootstrap import BootstrapParams, Interval, interval, paired_difference, resample_weights
from pipelines.common.metrics import per_query
from pipelines.common.queries import QuerySet, Rankings

REFERENCE = "shipped"


def flat_interval(name: str, found: Interval) -> dict[str, float]:
    """{"recall@10": mean, "recall@10_ci_low": ..., "recall@10_ci_high": ...}: flat numbers for DVC."""
    return {name: found.mean, f"{name}_ci_low": found.low, f"{name}_ci_high": found.high}


def score_systems(ranked: Mapping[str, Rankings], queries: QuerySet, names: Sequence[str],
                  boot: BootstrapParams) -> dict[str, Any]:
    """Means and CIs per system, and shipped minus every other system (paired, same resamples)."""
    scores = {system: per_query(r, queries.relevance, names) for system, r in ranked.items()}
    weights = resample_weights(len(queries.texts), boot.resamples, boot.seed)
    out: dict[str, Any] = {system: {k: v for name in names for k, v in
                                    flat_interval(name, interval(values[name], weights, boot.confidence)).items()}
                           for system, values in scores.items()}
    out[f"paired_vs_{REFERENCE}"] = {
        system: {k: v for name in names for k, v in flat_interval(name, paired_difference(
            scores[REFERENCE][name], scores[system][name], weights, boot.confidence)).items()}
        for system in scores if system != REFERENCE}
    return out


def score_set(ranked: Mapping[str, Rankings], queries: QuerySet, names: Sequence[str],
              boot: BootstrapParams) -> dict[str, Any]:
    """One query set: every system, paired CIs, and the same again for each query kind when it mixes kinds."""
    out = {"queries": len(queries.texts), "relevant_pairs": sum(len(r) for r in queries.relevance)}
    out |= score_systems(ranked, queries, names, boot)
    kinds = sorted(set(queries.kinds))
    if len(kinds) > 1:
        out["by_kind"] = {}
        for kind in kinds:
            subset, rows = queries.of_kind(kind)
            own = {system: [r[i] for i in rows] for system, r in ranked.items()}
            out["by_kind"][kind] = {"queries": len(rows)} | score_systems(own, subset, names, boot)
    return out


def recall_curves(ranked: Mapping[str, Rankings], queries: QuerySet, ks: Sequence[int]) -> dict[str, list[float]]:
    """Each system's mean Recall@k at every k of `ks`."""
    names = [f"recall@{k}" for k in ks]
    return {system: [float(v.mean()) for v in per_query(r, queries.relevance, names).values()]
            for system, r in ranked.items()}


def wide_intervals(metrics: Mapping[str, Any], sets: Sequence[str], half_width: float) -> list[str]:
    """A warning per set whose shipped Recall@10 CI is wider than +-`half_width`: too few queries to tell systems
    apart (a small catalog: raise pairs.min_test_queries)."""
    warnings = []
    for name in sets:
        low, high = metrics[name][REFERENCE]["recall@10_ci_low"], metrics[name][REFERENCE]["recall@10_ci_high"]
        if (high - low) / 2 > half_width:
            warnings.append(f"{name}: the shipped Recall@10 CI [{low:.3f}, {high:.3f}] is wider than +-{half_width:g} "
                            f"({metrics[name]['queries']} queries): add queries (pairs.min_test_queries)")
    return warnings
