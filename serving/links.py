"""Title links: a query that names a catalog item ("something like Equilibrium") also ranks that item's neighbours.

Dense and BM25 read "Equilibrium" as words; a person means the film, and items like it. `TitleLinker`
finds the catalog titles a query names (normalised, longest first, no overlaps) and `link_fuse` merges
each named item's own neighbour list (the item first, then its HNSW neighbours) into the fused ranking
by weighted reciprocal rank fusion. A title is linkable only when it is specific: its rarest BM25 term
occurs in at most a share `MAX_DOCUMENT_FREQUENCY` of the catalog's documents (or in one document, in a
catalog too small for that share to make one). That keeps out titles made of everyday or genre words
("Romance", "War", "Next", "2012"); a title of stopwords only ("It", "If....") has no BM25 term and is
never linked. Whether links help, and at which weight, is chosen on validation by the `fusion` stage
(`Fusion.link_weight`, 0 = off). A linked search's scores are RRF scores, not cosines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from serving.bm25 import tokenize
from serving.conversation.gazetteer import longest_matches, normalise

# Movies validation: at 0.3%, 98 of 236 synthetic requests and 12 of 634 template queries link (genre
# words, years); with no threshold, 121 and 135, and the template queries lose 0.04 MRR@10 (README).
MAX_DOCUMENT_FREQUENCY = 0.003


class TitleLinker:
    """Catalog titles -> global rows; `links(text)` names the rows whose specific titles `text` contains."""

    def __init__(self, titles: Sequence[str | None], document_counts: Mapping[str, int], documents: int):
        """`titles[g]` is global row g's title; `document_counts[term]` how many of the `documents` hold a
        BM25 term (a term missing counts as in all of them)."""
        most = max(1.0, MAX_DOCUMENT_FREQUENCY * documents)
        keys = [normalise(title or "") for title in titles]
        self.rows: dict[str, int] = {}
        for row, (key, terms) in enumerate(zip(keys, tokenize(keys))):
            if terms and min(document_counts.get(t, documents) for t in terms) <= most:
                self.rows.setdefault(key, row)  # a title two items share links the first
        self.longest = max((len(key.split()) for key in self.rows), default=0)

    @classmethod
    def of(cls, titles: Sequence[str | None], bm25) -> TitleLinker:  # bm25: bm25s.BM25
        """From the titles in global-row order and the BM25 index over the same documents."""
        counts = np.diff(np.asarray(bm25.scores["indptr"]))  # documents per term (columns of the score matrix)
        return cls(titles, {term: int(counts[i]) for term, i in bm25.vocab_dict.items() if i < len(counts)},
                   int(bm25.scores["num_docs"]))  # bm25s's vocabulary may end with an empty token that has no column

    def links(self, text: str) -> list[int]:
        """Global rows of the titles `text` names, left to right, longest match first, without overlaps."""
        return list(dict.fromkeys(longest_matches(normalise(text).split(), self.rows, self.longest)))


def link_fuse(ranked: np.ndarray, linked: Sequence[np.ndarray], weight: float, rrf_k: int, k: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) of the top k by weighted RRF: `1 / (rrf_k + rank in ranked)` plus, for each list in
    `linked`, `weight / (rrf_k + rank there)`; ranks are 1-based, ties keep `ranked`'s order."""
    scores: dict[int, float] = {}
    for lists, w in (([ranked], 1.0), (linked, weight)):
        for rows in lists:
            for rank, row in enumerate(rows.tolist(), 1):
                scores[row] = scores.get(row, 0.0) + w / (rrf_k + rank)
    order = sorted(scores, key=lambda row: -scores[row])[:k]  # sorted is stable: `ranked` rows come first
    return np.array(order, dtype=np.int64), np.array([scores[row] for row in order])
