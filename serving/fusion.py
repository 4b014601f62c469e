"""How a snapshot combines its dense (HNSW) and lexical (BM25) rankings: the method the publisher chose.

Candidates are the union of the dense top list and the BM25 top list (`candidate_count(k)` each), every
candidate scored by both retrievers. Then, by `Fusion.method`:
- `dense`: the dense score alone;
- `hybrid`: `(1 - w) * dense + w * bm25`, each min-max normalised over the candidates;
- `rrf`: reciprocal rank fusion (Cormack et al. 2009), `1 / (rrf_k + dense rank) + 1 / (rrf_k + bm25 rank)`,
  ranks taken within the candidates; a candidate sharing no term with the query gets no BM25 term.
With `prior_weight` w > 0, the method's score, min-max normalised over the candidates, is blended with
the popularity prior (serving.prior): `(1 - w) * fused + w * prior`. Then, when `link_weight` > 0, the
items whose titles the query names merge in with their neighbours (serving.links). The method, weights,
prior and links are chosen on validation queries by the `fusion` stage, with this same code, and recorded
in the snapshot's manifest; `Reader.search` uses them unless a mode is asked for (a mode keeps the prior
and the links).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

Method = Literal["dense", "hybrid", "rrf"]
METHODS: tuple[str, ...] = get_args(Method)


@dataclass(frozen=True)
class Fusion:
    method: Method = "dense"
    bm25_weight: float = 0.5  # hybrid only
    rrf_k: int = 60  # rrf only
    link_weight: float = 0.0  # weight of the named titles' neighbour lists (serving.links); 0: no links
    prior_weight: float = 0.0  # weight of the popularity prior (serving.prior); 0: none

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"fusion method must be one of {METHODS}, not {self.method!r}")
        if not 0.0 <= float(self.bm25_weight) <= 1.0:
            raise ValueError(f"fusion bm25_weight must be in [0, 1], not {self.bm25_weight!r}")
        if not isinstance(self.rrf_k, int) or self.rrf_k < 1:
            raise ValueError(f"fusion rrf_k must be an integer >= 1, not {self.rrf_k!r}")
        if not 0.0 <= float(self.link_weight) < float("inf"):
            raise ValueError(f"fusion link_weight must be a finite number >= 0, not {self.link_weight!r}")
        if not 0.0 <= float(self.prior_weight) <= 1.0:
            raise ValueError(f"fusion prior_weight must be in [0, 1], not {self.prior_weight!r}")

    def name(self) -> str:
        """A short label: "dense", "hybrid@0.3", "rrf@60", "hybrid@0.3+prior@0.5+links@1"."""
        name = {"dense": "dense", "hybrid": f"hybrid@{self.bm25_weight:g}", "rrf": f"rrf@{self.rrf_k}"}[self.method]
        return (name + (f"+prior@{self.prior_weight:g}" if self.prior_weight else "")
                + (f"+links@{self.link_weight:g}" if self.link_weight else ""))


def candidate_count(k: int) -> int:
    """How many candidates each retriever contributes before fusion."""
    return max(4 * k, 50)


def minmax(scores: np.ndarray) -> np.ndarray:
    if scores.size == 0:
        return scores
    low, high = scores.min(), scores.max()
    return np.zeros_like(scores) if high <= low else (scores - low) / (high - low)


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each score, best first (ties broken by position)."""
    out = np.empty(len(scores), dtype=np.int64)
    out[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return out


def fuse(fusion: Fusion, dense: np.ndarray, lexical: np.ndarray, k: int,
         prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(positions, scores) of the top-k candidates, best first; `dense[i]`, `lexical[i]` and `prior[i]` score
    candidate i (lexical 0: no term in common; no prior: none is blended in). Ties go to the better dense score."""
    if fusion.method == "dense":
        fused = dense.astype(np.float64)
    elif fusion.method == "hybrid":
        fused = (1.0 - fusion.bm25_weight) * minmax(dense) + fusion.bm25_weight * minmax(lexical)
    else:
        fused = 1.0 / (fusion.rrf_k + ranks(dense))
        fused = fused + np.where(lexical > 0, 1.0 / (fusion.rrf_k + ranks(lexical)), 0.0)
    if fusion.prior_weight and prior is not None:
        fused = (1.0 - fusion.prior_weight) * minmax(fused) + fusion.prior_weight * prior
    order = np.lexsort((-dense, -fused))[:k]
    return order, fused[order]
