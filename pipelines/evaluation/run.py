"""Every system on every query set, scored: what `evaluate` reports, computed here and written elsewhere.

The systems (pipelines.retrieval.systems) rank the same documents for the same queries; each set's
rankings are scored with paired bootstrap CIs against the shipped system (scores), and the shipped path's
batch-1 latency and its HNSW recall against exact search are measured on the first set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from pipelines.common.queries import QuerySet, Rankings
from pipelines.evaluation.params import EvaluateParams
from pipelines.evaluation.scores import recall_curves, score_set, wide_intervals
from pipelines.index import ann_recall
from pipelines.retrieval.systems import (
    Corpus,
    SetRankings,
    bm25_rankings,
    model_systems,
    prior_systems,
    shipped_systems,
)
from serving.snapshot import Snapshot

log = logging.getLogger(__name__)

SYSTEMS = ("popularity", "bm25", "bm25_prior", "zero_shot", "finetuned", "selected", "shipped_dense", "shipped")


@dataclass(frozen=True)
class Inputs:
    """What one evaluation ranks: the documents, the query sets, the shipped path and the model systems."""
    corpus: Corpus
    sets: dict[str, QuerySet]
    snapshot: Snapshot  # the shipped query path, its encoder on one thread (its latency is measured too)
    folders: dict[str, Path]  # model system -> sentence-transformers folder
    aliases: dict[str, str]  # model system -> the system whose rankings it shares (selected -> finetuned)
    bm25_prior_weight: float | None  # the snapshot's prior: score popularity and bm25_prior; None: no prior
    context: dict[str, Any]  # written into metrics.json as is


@dataclass(frozen=True)
class Evaluation:
    systems: list[str]  # report order
    ranked: dict[str, dict[str, Rankings]]  # set -> system -> rankings cut to the deepest k (the TREC runs)
    metrics: dict[str, Any]  # metrics.json
    latency_ms: dict[str, np.ndarray]  # encode, search, total: one value per timed query
    curves: dict[str, list[float]]  # the first set's recall curve per system, at params curve_ks


def rank_systems(inputs: Inputs, k: int, params: EvaluateParams) -> tuple[dict[str, SetRankings], dict[str, Any]]:
    """{system: {set: rankings}} of every system, and the model systems' mean relevant cosines."""
    sets = inputs.sets
    ranked = {"bm25": {name: bm25_rankings(inputs.corpus, q.texts, q.fetch_k(k)) for name, q in sets.items()}}
    by_model, cosine = model_systems(inputs.folders, inputs.corpus, sets, k, params.batch_size, params.seed)
    ranked |= by_model | {system: by_model[target] for system, target in inputs.aliases.items()}
    if inputs.bm25_prior_weight is not None:
        ranked |= prior_systems(inputs.snapshot, sets, inputs.bm25_prior_weight, k)
    return ranked | shipped_systems(inputs.snapshot, sets, k), cosine


def evaluate(inputs: Inputs, params: EvaluateParams) -> Evaluation:
    """Rank every set with every system and score it; measure the shipped path on the first set."""
    k, sets = params.max_k, inputs.sets
    log.info("%s over %d documents", {name: len(q.texts) for name, q in sets.items()}, len(inputs.corpus.ids))
    by_system, cosine = rank_systems(inputs, k, params)
    systems = [system for system in SYSTEMS if system in by_system]
    ranked = {name: {system: q.rankings(by_system[system][name], k) for system in systems} for name, q in sets.items()}
    metrics: dict[str, Any] = {name: score_set(ranked[name], q, params.metrics, params.bootstrap)
                               for name, q in sets.items()}
    first = next(iter(sets))
    vectors = inputs.snapshot.encoder.encode(sets[first].texts)
    latency = latencies_ms(inputs.snapshot, sets[first].texts[:params.latency_queries], 10)
    metrics |= {"latency_ms": latency_summary(latency), **inputs.context,
                **shipped_context(inputs.snapshot, vectors, len(inputs.corpus.ids))}
    if cosine:
        metrics["mean_cosine"] = cosine
    if warnings := wide_intervals(metrics, list(sets), params.warn_ci_half_width):
        metrics["warnings"] = warnings
    return Evaluation(systems, ranked, metrics, latency, recall_curves(ranked[first], sets[first], params.curve_ks))


def shipped_context(snapshot: Snapshot, vectors: np.ndarray, documents: int) -> dict[str, Any]:
    """The shipped path's settings, and how much of exact search's top 10 its HNSW finds for `vectors`."""
    return {"documents": documents, "ef_search": snapshot.index.manifest.ef_search,
            "shards": len(snapshot.index.shards), "fusion": snapshot.fusion.name(),
            "hnsw_recall_at_10_vs_exact": ann_recall(snapshot.index.search(vectors, 10).scores,
                                                     snapshot.index.search(vectors, 10, exact=True).scores)}


def latencies_ms(snapshot: Snapshot, texts: Sequence[str], k: int) -> dict[str, np.ndarray]:
    """Batch-1 latency of the shipped path, one thread: `total` is the default search (it encodes, then dense +
    BM25 + fusion), `encode` the same query encoded alone, `search` the difference."""
    faiss.omp_set_num_threads(1)
    encode, total = np.empty(len(texts)), np.empty(len(texts))
    for i, text in enumerate(texts):
        start = time.perf_counter()
        snapshot.encoder.encode([text])
        middle = time.perf_counter()
        snapshot.search(text, k)
        encode[i], total[i] = middle - start, time.perf_counter() - middle
    return {"encode": encode * 1e3, "search": (total - encode) * 1e3, "total": total * 1e3}


def latency_summary(ms: dict[str, np.ndarray]) -> dict[str, float]:
    return {f"{part}_p{p}": float(np.percentile(values, p)) for part, values in ms.items() for p in (50, 95, 99)}
