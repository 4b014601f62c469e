"""One opened, verified snapshot folder, and the queries it answers.

Layout (written by `semrec publish`, checked against manifest.json by serving.cache):
  index/    the sharded HNSW index + metadata shards + id map (serving.shards)
  encoder/  model_int8.onnx, tokenizer.json, encoder.json (serving.encoder)
  bm25/     the BM25 index over the item documents, document g = global row g (shards in order)
  prior/    optional: positives.npy, each global row's liked count, for the popularity prior (serving.prior)
  intent/   optional (movies): what `ask` needs to read conversational requests (serving.conversation.ask)
  metrics.json, manifest.json

A search ranks by the manifest's fusion (serving.fusion: dense, weighted hybrid or RRF of dense and BM25,
blended with the popularity prior, then title links, serving.links) unless a mode is asked for. The
pipeline tunes and scores exactly this code over its local folders (pipelines/retrieval/shipped.py), before
anything is published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from serving.bm25 import bm25_scores, lexical_top, load_bm25
from serving.conversation.ask import Answer, Conversation
from serving.encoder import Encoder
from serving.filters import FilterColumns, Filters
from serving.fusion import METHODS, Fusion, Method, candidate_count, fuse
from serving.hits import Hit, hits_from
from serving.links import TitleLinker, link_fuse
from serving.manifest import Manifest
from serving.prior import PRIOR_FILE, load_positives, prior_scores
from serving.shards import Hits, ShardedIndex
from serving.shards import Manifest as IndexManifest

Mode = Method
MODES = METHODS
INDEX_DIR, ENCODER_DIR, BM25_DIR, INTENT_DIR, PRIOR_DIR = "index", "encoder", "bm25", "intent", "prior"


@dataclass(frozen=True)
class Candidates:
    """One query's fusion candidates: global rows, and each one's dense and BM25 score (0: no term in common)."""
    rows: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray


def fuse_candidates(candidates: Candidates, fusion: Fusion, k: int, prior: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) of the top k candidates under `fusion`, best first; `prior` (indexed by row) is each
    row's popularity prior, None for none. The one place a ranking is fused (the pipeline's exact search too)."""
    own_prior = None if prior is None else prior[candidates.rows]
    order, scores = fuse(fusion, candidates.dense, candidates.lexical, k, own_prior)
    return candidates.rows[order], scores


class Snapshot:
    """A snapshot's index, encoder and BM25, memory-mapped; immutable, so safe to share across threads."""

    def __init__(self, index: ShardedIndex, encoder: Encoder, bm25: Any, fusion: Fusion,
                 manifest: Manifest | None = None, conversation: Conversation | None = None,
                 positives: np.ndarray | None = None):
        """`positives`: each global row's liked count (serving.prior); None: no prior, whatever the fusion."""
        if positives is not None and len(positives) != len(index):
            raise ValueError(f"{len(positives)} prior counts for an index of {len(index)} items")
        self.prior = None if positives is None else prior_scores(positives)
        self.manifest = manifest
        self.fusion = fusion
        self.conversation = conversation
        self.index = index
        self.encoder = encoder
        self.bm25 = bm25
        counts = [shard.index.ntotal for shard in index.shards]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # global row of each shard's row 0

    @classmethod
    def open(cls, folder: str | Path, manifest: Manifest, threads: int | None = None) -> Snapshot:
        folder = Path(folder)
        index = IndexManifest.read(folder / INDEX_DIR)
        for name in index.files():  # only what the snapshot manifest vouches for (ManifestError otherwise)
            manifest.file(f"{INDEX_DIR}/{name}")
        conversation = Conversation.load(folder / INTENT_DIR) if (folder / INTENT_DIR).is_dir() else None
        positives = None
        if (folder / PRIOR_DIR).is_dir():
            manifest.file(f"{PRIOR_DIR}/{PRIOR_FILE}")
            positives = load_positives(folder / PRIOR_DIR)
        return cls(ShardedIndex.open(folder / INDEX_DIR, index), Encoder.load(folder / ENCODER_DIR, "int8", threads),
                   load_bm25(folder / BM25_DIR), manifest.fusion, manifest, conversation, positives)

    @property
    def snapshot_id(self) -> str:
        return self.manifest.snapshot_id if self.manifest else "local"

    def with_mode(self, mode: Mode | None) -> Fusion:
        """The snapshot's fusion, or the same fusion with another method (`mode`); None keeps the snapshot's."""
        if mode is None:
            return self.fusion
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        return replace(self.fusion, method=mode)

    def search(self, text: str, k: int = 10, filters: Filters | Mapping[str, Any] | None = None,
               mode: Mode | None = None) -> list[Hit]:
        """The top-k items for a natural-language query, ranked by the snapshot's fusion unless `mode` names
        another; never fewer than k when k items pass the filters."""
        fusion = self.with_mode(mode)
        query = self.encoder.encode([text])[0]
        allow = self._allow(Filters.parse(filters))
        blends = fusion.link_weight or (fusion.prior_weight and self.prior is not None)
        if fusion.method == "dense" and not blends:
            return self.lookup(self._dense(query, k, allow), k)
        rows, scores = self.ranked(text, query, fusion, k, allow)
        shards = np.searchsorted(self.offsets, rows, side="right") - 1
        return hits_from(self.index.metadata(shards, rows - self.offsets[shards]), scores)

    def more_like(self, item_id: str, k: int = 10, filters: Filters | Mapping[str, Any] | None = None) -> list[Hit]:
        """Items most similar to `item_id` (itself excluded); KeyError when the catalog lacks it."""
        shard, row = self.index.locate(item_id)
        allow = self._allow(Filters.parse(filters)) or [np.ones(s.index.ntotal, dtype=bool) for s in self.index.shards]
        allow[shard] = allow[shard].copy()
        allow[shard][row] = False
        return self.lookup(self._dense(self.index.vector(item_id), k, allow), k)

    def item(self, item_id: str) -> Hit:
        """One item's metadata (score 1.0); KeyError when the catalog lacks it."""
        shard, row = self.index.locate(item_id)
        return hits_from(self.index.metadata(np.array([shard]), np.array([row])), np.ones(1))[0]

    def ask(self, text: str, k: int = 10) -> Answer:
        """A conversational request, routed and explained (serving.conversation.ask); needs the snapshot's intent/."""
        if self.conversation is None:
            raise ValueError(f"snapshot {self.snapshot_id} has no {INTENT_DIR}/ folder: it cannot read requests")
        return self.conversation.ask(self, text, k)

    @cached_property
    def linker(self) -> TitleLinker:
        """The catalog's linkable titles, built on the first linked search (seconds at a million items)."""
        return TitleLinker.of([t for shard in self.index.shards for t in shard.metadata.column("title").to_pylist()],
                              self.bm25)

    @cached_property
    def filter_columns(self) -> list[FilterColumns]:
        """Per shard, built on the first filtered query (~1.7 s at 1M items: kept off the cold open)."""
        return [FilterColumns.of(shard.metadata) for shard in self.index.shards]

    def _allow(self, filters: Filters) -> list[np.ndarray] | None:
        return [filters.mask(columns) for columns in self.filter_columns] if filters else None

    def _dense(self, query: np.ndarray, k: int, allow: list[np.ndarray] | None) -> Hits:
        """HNSW top-k; exact over the allowed rows when the filtered graph walk came back short."""
        hits = self.index.search(query[None], k, allow)
        available = len(self.index) if allow is None else int(sum(mask.sum() for mask in allow))
        if len(hits.found(0)) < min(k, available):
            hits = self.index.search(query[None], k, allow, exact=True)
        return hits

    def lookup(self, hits: Hits, k: int) -> list[Hit]:
        """The metadata of the first k found hits of query 0, as Hit records."""
        found = hits.found(0)[:k]
        return hits_from(self.index.metadata(hits.shards[0, found], hits.rows[0, found]), hits.scores[0, found])

    def candidates(self, text: str, query: np.ndarray, k: int, allow: list[np.ndarray] | None = None) -> Candidates:
        """The dense (HNSW) and BM25 top lists of one query, each `candidate_count(k)` long, scored by both."""
        n = candidate_count(k)
        dense = self._dense(query, n, allow)
        found = dense.found(0)
        dense_rows = self._global_rows(dense)
        lexical = bm25_scores(self.bm25, text)
        if allow is not None:
            lexical = np.where(np.concatenate(allow), lexical, 0.0)
        rows = np.union1d(dense_rows, lexical_top(lexical, n))
        known = dict(zip(dense_rows.tolist(), dense.scores[0, found].tolist()))
        dense_scores = np.array([known[g] if g in known else self._score(query, g)  # BM25-only candidates
                                 for g in rows.tolist()], dtype=np.float32)
        return Candidates(rows, dense_scores, lexical[rows])

    def named(self, text: str, k: int, allow: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """The neighbour lists (the item first) of the catalog titles `text` names (serving.links)."""
        n = candidate_count(k)
        return [self._neighbours(row, n, allow) for row in self.linker.links(text)]

    def ranked(self, text: str, query: np.ndarray, fusion: Fusion, k: int, allow: list[np.ndarray] | None = None,
               candidates: Candidates | None = None, named: list[np.ndarray] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(global rows, scores) of the top k under `fusion`, best first: the candidates fused, then, when the
        fusion links titles and `text` names some, merged with the named items' neighbour lists. `candidates`
        and `named`, when given, are this query's (callers ranking one query many ways fetch them once)."""
        candidates = candidates or self.candidates(text, query, k, allow)
        if fusion.link_weight and named is None:
            named = self.named(text, k, allow)
        if not (fusion.link_weight and named):
            return self.fused(candidates, fusion, k)
        rows, _ = self.fused(candidates, fusion, candidate_count(k))
        return link_fuse(rows, named, fusion.link_weight, fusion.rrf_k, k)

    def fused(self, candidates: Candidates, fusion: Fusion, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(global rows, scores) of the top k candidates under `fusion` (no links), best first."""
        return fuse_candidates(candidates, fusion, k, self.prior)

    def _neighbours(self, row: int, n: int, allow: list[np.ndarray] | None) -> np.ndarray:
        """Global rows of the n items nearest stored item `row` (itself first, unless filtered out)."""
        return self._global_rows(self._dense(self._vector(row), n, allow))

    def _global_rows(self, hits: Hits) -> np.ndarray:
        """Global rows of query 0's found hits, in rank order."""
        found = hits.found(0)
        return self.offsets[hits.shards[0, found]] + hits.rows[0, found]

    def _vector(self, row: int) -> np.ndarray:
        """The stored vector of one item, by global row."""
        shard = int(np.searchsorted(self.offsets, row, side="right") - 1)
        return self.index.shards[shard].index.reconstruct(int(row - self.offsets[shard]))

    def _score(self, query: np.ndarray, row: int) -> float:
        """Exact dense score of one stored item, by global row."""
        return float(self._vector(row) @ query)
