"""Exact search over (document ids, L2-normalised vectors): every document scored, no HNSW.

The pipeline's FP32 systems rank with it (train's validation, select, evaluate's models, cross_catalog).
Its fused ranking takes candidates as serving's Snapshot does (the dense top list and the BM25 top list,
`candidate_count(k)` each, every candidate scored by both) and fuses them with the reader's own
serving.snapshot.fuse_candidates, so a fusion is computed one way everywhere.

Two kernels, kept because every published number was computed with them: `search` is FAISS's exact
inner-product search (evaluate's model systems, cross_catalog), `scores` numpy's matrix product (validation,
which needs every document's score for its fused candidates). Their float sums can differ in the last bit,
so near-ties deep in a ranking may fall in another order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from pipelines.common.queries import Rankings
from serving.bm25 import lexical_top
from serving.fusion import Fusion, candidate_count
from serving.snapshot import Candidates, fuse_candidates


@dataclass(frozen=True)
class ExactIndex:
    doc_ids: list[str]
    vectors: np.ndarray  # (documents, dim) float32, unit length: row i embeds doc_ids[i]

    def scores(self, query_vectors: np.ndarray) -> np.ndarray:
        """(queries, documents) cosine of every query with every document."""
        return query_vectors @ self.vectors.T

    def search(self, query_vectors: np.ndarray, k: int) -> Rankings:
        """The top-k document ids of each query, best first (FAISS's exact inner-product search)."""
        flat = faiss.IndexFlatIP(self.vectors.shape[1])
        flat.add(self.vectors)
        _, rows = flat.search(np.ascontiguousarray(query_vectors, dtype=np.float32), min(k, len(self.doc_ids)))
        return [[self.doc_ids[row] for row in found if row >= 0] for found in rows.tolist()]

    def fused(self, dense: np.ndarray, lexical: np.ndarray, fusion: Fusion, k: int) -> list[str]:
        """One query's top-k ids under `fusion`, from its cosine (`dense`) and BM25 (`lexical`) score of every
        document: the candidates serving's Snapshot would take, fused by the reader's own code."""
        n = candidate_count(k)
        rows = np.union1d(top(dense, n), lexical_top(lexical, n))
        fused_rows, _ = fuse_candidates(Candidates(rows, dense[rows], lexical[rows]), fusion, k)
        return [self.doc_ids[row] for row in fused_rows.tolist()]


def top(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k highest scores, best first; ties go to the lower row."""
    return np.argsort(-scores, kind="stable")[:k]


def exact_index(doc_ids: Sequence[str], vectors: np.ndarray) -> ExactIndex:
    if len(doc_ids) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors for {len(doc_ids)} documents")
    return ExactIndex(list(doc_ids), np.ascontiguousarray(vectors, dtype=np.float32))
