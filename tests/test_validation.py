"""validation: the dense and RRF-fused rankings an encoder is scored by, from its vectors."""

import numpy as np

from pipelines.common.queries import QuerySet
from pipelines.retrieval.exact import exact_index
from pipelines.retrieval.validation import Validation


def test_rankings_are_dense_order_and_rrf_with_bm25_without_excluded_items():
    queries = QuerySet(texts=["q1", "q2"], relevance=[{"a": 1.0}, {"b": 1.0}], exclude=[set(), {"a"}],
                       kinds=["review", "co_liked"])
    lexical = np.array([[0.0, 0.0, 5.0], [0.0, 2.0, 0.0]])  # q1 shares terms with c only, q2 with b only
    validation = Validation(queries, ["a", "b", "c"], ["doc a", "doc b", "doc c"], lexical)
    documents = exact_index(["a", "b", "c"], np.eye(3))  # so a query vector is its row of cosines
    ranked = validation.rankings(documents, np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]], dtype=np.float32))
    assert ranked["dense"] == [["a", "c", "b"], ["c", "b"]]
    # q1: c is 2nd dense + 1st BM25 (1/62 + 1/61) over a (1/61); q2: b 2nd dense + 1st BM25 over c; a excluded
    assert ranked["fused"] == [["c", "a", "b"], ["b", "c"]]
