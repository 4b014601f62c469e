"""How an encoder is scored on the validation split: by `train` (its checkpoints) and `select` (its candidates).

Two systems per encoder: `dense`, exact cosine search over every document (pipelines.retrieval.exact), and
`fused`, that dense list fused with BM25 by reciprocal rank fusion (k = 60) through the reader's own fusion
code, the shape of what ships before its fusion is tuned. A fine-tuned encoder that ranks deeper (better
Recall@100) but not better at 10 can still make the better shipped system; `fused_recall@10` sees that.
Metric names: `<dense|fused>_<recall@10|mrr@10|ndcg@10>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

from pipelines.common.metrics import per_query
from pipelines.common.queries import QuerySet, Rankings, query_set
from pipelines.common.schemas import DOCUMENTS, PAIRS, conform
from pipelines.retrieval.encode import encode
from pipelines.retrieval.exact import ExactIndex, exact_index, top
from serving.bm25 import bm25_scores, build_bm25
from serving.fusion import Fusion, candidate_count

METRICS = ("recall@10", "mrr@10", "ndcg@10")
SYSTEMS = ("dense", "fused")
NAMES = tuple(f"{system}_{metric}" for system in SYSTEMS for metric in METRICS)
K = 10
RRF = Fusion("rrf")


def check_metric(name: str, source: str) -> str:
    if name not in NAMES:
        raise ValueError(f"{source} must be one of {NAMES}, not {name!r}")
    return name


@dataclass(frozen=True)
class Validation:
    queries: QuerySet
    doc_ids: list[str]
    documents: list[str]
    lexical: np.ndarray  # (queries, documents) BM25 scores, computed once

    @classmethod
    def load(cls, pairs_dir: Path, split: str = "validation") -> Validation:
        """The pairs of one split (validation unless asked: bench/mpnet.py scores test sets) and the documents
        of a pairs folder."""
        path = pairs_dir / f"{split}.parquet"
        queries = query_set(conform(pq.read_table(path), PAIRS, str(path)))
        if not queries.texts:
            raise ValueError(f"{path}: no {split} pairs to score an encoder on")
        docs = conform(pq.read_table(pairs_dir / "documents.parquet"), DOCUMENTS, str(pairs_dir / "documents.parquet"))
        documents = docs["document"].to_pylist()
        bm25 = build_bm25(documents)
        return cls(queries, docs["item_id"].to_pylist(), documents,
                   np.stack([bm25_scores(bm25, text) for text in queries.texts]))

    def rankings(self, index: ExactIndex, query_vectors: np.ndarray) -> dict[str, Rankings]:
        """Top-K rankings of each system (SYSTEMS) of an encoder's document (`index`) and query vectors."""
        fetch = self.queries.fetch_k(K)
        ranked: dict[str, Rankings] = {"dense": [], "fused": []}
        for dense, lexical in zip(index.scores(query_vectors), self.lexical):
            ranked["dense"].append([self.doc_ids[i] for i in top(dense, self.queries.fetch_k(candidate_count(K)))])
            ranked["fused"].append(index.fused(dense, lexical, RRF, fetch))
        return {system: self.queries.rankings(rows, K) for system, rows in ranked.items()}

    def query_scores(self, model: Any, batch_size: int) -> dict[str, np.ndarray]:
        """Every metric of NAMES for one sentence-transformers model, query by query (in `queries` order)."""
        index = exact_index(self.doc_ids, encode(model, self.documents, batch_size))
        out = {}
        for system, rankings in self.rankings(index, encode(model, self.queries.texts, batch_size)).items():
            values = per_query(rankings, self.queries.relevance, METRICS)
            out |= {f"{system}_{metric}": v for metric, v in values.items()}
        return out

    def score(self, model: Any, batch_size: int) -> dict[str, float]:
        """Every metric of NAMES for one sentence-transformers model: the means over queries."""
        return {name: round(float(v.mean()), 6) for name, v in self.query_scores(model, batch_size).items()}


class ValidationEvaluator(SentenceEvaluator):
    """`Validation.score` as a sentence-transformers evaluator, so the trainer keeps the best checkpoint."""

    def __init__(self, validation: Validation, metric: str, batch_size: int, name: str = "validation"):
        super().__init__()
        self.validation, self.batch_size, self.name = validation, batch_size, name
        self.primary_metric = check_metric(metric, "the checkpoint metric")

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
                 ) -> dict[str, float]:
        metrics = self.prefix_name_to_metrics(self.validation.score(model, self.batch_size), self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
