"""The lexical half of retrieval: BM25 (bm25s) over the item documents, one tokenization for index and query.

The index is saved by bm25s as .npy + JSON (no pickle) and loaded memory-mapped; document i of the index
is the snapshot's global row i. How its scores combine with the dense ones: serving.fusion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

STOPWORDS = "en"


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """The one tokenization used to build the index and to query it."""
    return bm25s.tokenize(list(texts), stopwords=STOPWORDS, return_ids=False, show_progress=False)


def build_bm25(documents: Sequence[str]) -> bm25s.BM25:
    """BM25 over `documents`; document i of the index is `documents[i]`."""
    bm25 = bm25s.BM25()
    bm25.index(tokenize(documents), show_progress=False)
    return bm25


def save_bm25(bm25: bm25s.BM25, folder: str | Path) -> None:
    bm25.save(str(folder), allow_pickle=False, show_progress=False)


def load_bm25(folder: str | Path) -> bm25s.BM25:
    return bm25s.BM25.load(str(folder), mmap=True, allow_pickle=False, show_progress=False)


def bm25_scores(bm25: bm25s.BM25, text: str) -> np.ndarray:
    """BM25 score of `text` against every document (zeros when no query term is in the vocabulary)."""
    ids = bm25.get_tokens_ids(tokenize([text])[0])
    if not ids:
        return np.zeros(bm25.scores["num_docs"], dtype=np.float32)
    return np.asarray(bm25.get_scores_from_ids(ids), dtype=np.float32)


def lexical_top(scores: np.ndarray, n: int) -> np.ndarray:
    """Up to `n` documents with the highest positive BM25 scores (a term in common), unordered."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) <= n:
        return positive
    return positive[np.argpartition(-scores[positive], n - 1)[:n]]
