"""Held-out queries as retrieval is scored on them: one query per distinct text, with its relevant items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipelines.common.metrics import Relevance

Rankings = list[list[str]]


@dataclass(frozen=True)
class QuerySet:
    texts: list[str]
    relevance: list[Relevance]  # per query: item id -> gain
    exclude: list[set[str]]  # per query: items never counted in its ranking (the anchor of a co-liked pair)
    kinds: list[str]  # per query: the pair kind it came from (review, co_liked, synthetic, ...)

    def rankings(self, ranked: Rankings, k: int) -> Rankings:
        """`ranked` (fetched with `fetch_k(k)`) without each query's excluded items, cut to k."""
        return [[item for item in row if item not in skip][:k] for row, skip in zip(ranked, self.exclude)]

    def fetch_k(self, k: int) -> int:
        return k + max((len(skip) for skip in self.exclude), default=0)

    def of_kind(self, kind: str) -> tuple[QuerySet, list[int]]:
        """The queries of one kind, and their positions in this set."""
        rows = [i for i, own in enumerate(self.kinds) if own == kind]
        return QuerySet(*([values[i] for i in rows] for values in
                          (self.texts, self.relevance, self.exclude, self.kinds))), rows


def query_set(pairs: pa.Table, limit: int = 0, seed: int = 0) -> QuerySet:
    """One query per distinct query text (its relevant items: every pair with that text); a seeded sample of
    `limit` of them when limit > 0.

    A co-liked pair's query_id is "<anchor>><positive>": the anchor is the item the query stands for,
    so retrieving it answers nothing ("more like this" excludes the item itself).
    """
    relevant: dict[str, dict[str, float]] = {}
    exclude: dict[str, set[str]] = {}
    kind: dict[str, str] = {}
    for row in pairs.select(["query_id", "query", "item_id", "kind"]).to_pylist():
        relevant.setdefault(row["query"], {})[row["item_id"]] = 1.0
        kind.setdefault(row["query"], row["kind"])
        anchors = exclude.setdefault(row["query"], set())
        if row["kind"] == "co_liked":
            anchors.add(row["query_id"].split(">", 1)[0])
    texts = sorted(relevant)
    if 0 < limit < len(texts):
        texts = [texts[i] for i in sorted(np.random.default_rng(seed).choice(len(texts), limit, replace=False))]
    return QuerySet(texts, [relevant[t] for t in texts], [exclude[t] - set(relevant[t]) for t in texts],
                    [kind[t] for t in texts])
