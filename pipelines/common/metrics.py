"""Ranking metrics per query, pure: a ranking is a list of item ids, best first; relevance is graded.

`relevant` maps item id -> gain (> 0 means relevant; BEIR qrels carry grades, catalog pairs gain 1).
Every function returns one value per query so that the bootstrap can resample queries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

Ranking = Sequence[str]
Relevance = Mapping[str, float]


def positives(relevant: Relevance) -> set[str]:
    found = {item for item, gain in relevant.items() if gain > 0}
    if not found:
        raise ValueError("a query without relevant items has no recall: drop it before scoring")
    return found


def recall_at(ranking: Ranking, relevant: Relevance, k: int) -> float:
    """Share of the relevant items found in the top k."""
    wanted = positives(relevant)
    return len(wanted.intersection(ranking[:k])) / len(wanted)


def reciprocal_rank_at(ranking: Ranking, relevant: Relevance, k: int) -> float:
    """1 / rank of the first relevant item in the top k, 0 when there is none."""
    wanted = positives(relevant)
    return next((1.0 / rank for rank, item in enumerate(ranking[:k], 1) if item in wanted), 0.0)


def ndcg_at(ranking: Ranking, relevant: Relevance, k: int) -> float:
    """DCG of the top k (linear gain, log2(rank + 1) discount, as trec_eval) over the ideal DCG."""
    positives(relevant)
    dcg = sum(relevant.get(item, 0.0) / math.log2(rank + 1) for rank, item in enumerate(ranking[:k], 1))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    return dcg / sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, 1))


METRICS = {"recall": recall_at, "mrr": reciprocal_rank_at, "ndcg": ndcg_at}


def parse_metric(name: str) -> tuple[str, int]:
    """"recall@10" -> ("recall", 10), with a clear error for unknown names."""
    kind, _, k = name.partition("@")
    if kind not in METRICS or not k.isdigit() or int(k) < 1:
        raise ValueError(f"metric {name!r} is not <{'|'.join(METRICS)}>@<k >= 1>")
    return kind, int(k)


def per_query(rankings: Sequence[Ranking], relevance: Sequence[Relevance], names: Sequence[str]) -> dict[str, np.ndarray]:
    """{metric name: (n_queries,) float64} for names like "recall@10", "mrr@10", "ndcg@10"."""
    if len(rankings) != len(relevance):
        raise ValueError(f"{len(rankings)} rankings for {len(relevance)} queries")
    out = {}
    for name in names:
        kind, k = parse_metric(name)
        out[name] = np.array([METRICS[kind](r, rel, k) for r, rel in zip(rankings, relevance)], dtype=np.float64)
    return out
