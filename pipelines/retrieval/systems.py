"""The named systems `evaluate` ranks, each giving every query set its rankings (item ids, best first).

  popularity      the most liked items, the same list for every query: reads no text
  bm25            BM25 over the documents (serving.bm25's index and tokenization; bm25s ranks the batch)
  bm25_prior      BM25's top list re-ranked with the popularity prior, fused by the reader's own code
  zero_shot, finetuned, selected   sentence-transformers folders, FP32, exact search
  shipped_dense, shipped           the reader's own query path over the local folders (dense; its fusion)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.common.queries import QuerySet, Rankings
from pipelines.retrieval.encode import encode, load_model
from pipelines.retrieval.exact import exact_index
from pipelines.retrieval.shipped import rankings
from serving.bm25 import bm25_scores, build_bm25, lexical_top, tokenize
from serving.fusion import Fusion, candidate_count
from serving.snapshot import Candidates, Snapshot, fuse_candidates

SetRankings = dict[str, Rankings]  # query set name -> its rankings


@dataclass(frozen=True)
class Corpus:
    ids: list[str]
    texts: list[str]


def bm25_rankings(corpus: Corpus, queries: Sequence[str], k: int) -> Rankings:
    """BM25 top-k; a document sharing no term with the query is not retrieved."""
    result = build_bm25(corpus.texts).retrieve(tokenize(queries), k=min(k, len(corpus.ids)), show_progress=False)
    return [[corpus.ids[d] for d, s in zip(docs, scores) if s > 0]
            for docs, scores in zip(result.documents.tolist(), result.scores.tolist())]


def popularity_rankings(snapshot: Snapshot, n_queries: int, k: int) -> Rankings:
    """The baseline that reads no text: the k most liked items (ties by global row), for every query."""
    ids = snapshot.index.global_ids()
    top = [ids[row] for row in np.argsort(-snapshot.prior, kind="stable")[:k].tolist()]
    return [list(top) for _ in range(n_queries)]


def bm25_prior_rankings(snapshot: Snapshot, texts: Sequence[str], prior_weight: float, k: int) -> Rankings:
    """The lexical baseline given the shipped system's prior: BM25's top `candidate_count(k)` re-ranked by
    (1 - w) * min-max BM25 + w * prior, no dense score anywhere."""
    ids, lexical_only = snapshot.index.global_ids(), Fusion("hybrid", 1.0, prior_weight=prior_weight)
    out = []
    for text in texts:
        scores = bm25_scores(snapshot.bm25, text)
        rows = np.sort(lexical_top(scores, candidate_count(k)))  # ties go to the lower global row
        fused, _ = fuse_candidates(Candidates(rows, np.zeros(len(rows)), scores[rows]), lexical_only, k,
                                   snapshot.prior)
        out.append([ids[row] for row in fused.tolist()])
    return out


def prior_systems(snapshot: Snapshot, sets: Mapping[str, QuerySet], bm25_prior_weight: float,
                  k: int) -> dict[str, SetRankings]:
    """{"popularity": {set: rankings}, "bm25_prior": {...}} of a snapshot with a prior."""
    return {"popularity": {name: popularity_rankings(snapshot, len(q.texts), q.fetch_k(k)) for name, q in sets.items()},
            "bm25_prior": {name: bm25_prior_rankings(snapshot, q.texts, bm25_prior_weight, q.fetch_k(k))
                           for name, q in sets.items()}}


def shipped_systems(snapshot: Snapshot, sets: Mapping[str, QuerySet], k: int) -> dict[str, SetRankings]:
    """{"shipped_dense": {set: rankings}, "shipped": {...}} through the reader's own query path."""
    dense, fused = Fusion("dense"), snapshot.fusion
    out: dict[str, SetRankings] = {"shipped_dense": {}, "shipped": {}}
    for name, queries in sets.items():
        ranked = rankings(snapshot, queries.texts, [dense, fused], queries.fetch_k(k))
        out["shipped_dense"][name], out["shipped"][name] = ranked[dense], ranked[fused]
    return out


def model_systems(folders: Mapping[str, Path], corpus: Corpus, sets: Mapping[str, QuerySet], k: int,
                  batch_size: int, seed: int) -> tuple[dict[str, SetRankings], dict[str, dict[str, float]]]:
    """{system: {set: rankings}} of each sentence-transformers folder (one load, one corpus encoding each), and
    the mean cosine of relevant vs random (query, item) pairs per system on the first set."""
    out: dict[str, SetRankings] = {}
    cosine: dict[str, dict[str, float]] = {}
    row_of = {item: row for row, item in enumerate(corpus.ids)}
    for system, folder in folders.items():
        model = load_model(folder)
        index = exact_index(corpus.ids, encode(model, corpus.texts, batch_size))
        out[system] = {}
        for name, queries in sets.items():
            query_vectors = encode(model, queries.texts, batch_size)
            out[system][name] = index.search(query_vectors, queries.fetch_k(k))
            if system not in cosine:
                cosine[system] = relevant_cosine(query_vectors, index.vectors, row_of, queries, seed)
    return out, cosine


def relevant_cosine(query_vectors: np.ndarray, doc_vectors: np.ndarray, doc_row: Mapping[str, int],
                    queries: QuerySet, seed: int) -> dict[str, float]:
    """Mean cosine of relevant (query, item) pairs, and of as many random pairs for scale."""
    q_rows, d_rows = zip(*[(q, doc_row[item]) for q, rel in enumerate(queries.relevance) for item in rel])
    relevant = np.einsum("ij,ij->i", query_vectors[list(q_rows)], doc_vectors[list(d_rows)])
    random = np.random.default_rng(seed).integers(len(doc_vectors), size=len(q_rows))
    unrelated = np.einsum("ij,ij->i", query_vectors[list(q_rows)], doc_vectors[random])
    return {"relevant": float(relevant.mean()), "random": float(unrelated.mean()), "pairs": len(q_rows)}
