"""Choose the hybrid BM25 weight on validation pairs, with the reader's own fusion (serving.hybrid).

Dense scores are exact (all documents), as the reader's HNSW approximates them. The weight with the
best Recall@k wins; ties go to the smaller BM25 weight, so w = 0 (dense only) unless BM25 helps.
"""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np

from serving.hybrid import bm25_scores, candidate_count, lexical_top, rank_fused


def recall_by_weight(queries: Sequence[str], query_vectors: np.ndarray, positives: np.ndarray,
                     embeddings: np.ndarray, bm25: bm25s.BM25, weights: Sequence[float], k: int) -> dict[float, float]:
    """Recall@k of each BM25 weight; `positives[i]` is the document row query i should find."""
    if len(queries) == 0:
        raise ValueError("no validation pairs to choose the hybrid weight on")
    n = candidate_count(k)
    hits = np.zeros(len(weights))
    for text, vector, positive in zip(queries, query_vectors, positives):
        dense = embeddings @ vector
        lexical = bm25_scores(bm25, text)
        candidates = np.union1d(np.argpartition(-dense, min(n, len(dense)) - 1)[:n], lexical_top(lexical, n))
        for i, weight in enumerate(weights):
            order, _ = rank_fused(dense[candidates], lexical[candidates], weight, k)
            hits[i] += positive in candidates[order]
    return {float(w): float(h / len(queries)) for w, h in zip(weights, hits)}


def best_weight(recalls: dict[float, float]) -> float:
    return min(recalls, key=lambda w: (-recalls[w], w))
