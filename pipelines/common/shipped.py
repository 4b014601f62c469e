"""The shipped query path (serving.snapshot.Snapshot) over the pipeline's local folders.

The `fusion` stage tunes it and `evaluate` scores it through the reader's own code: the INT8 encoder, the
sharded HNSW index at its tuned efSearch, and BM25 over the documents in global-row order, as `publish`
packs them. So the numbers are those of what a reader of the published snapshot answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from serving.bm25 import build_bm25
from serving.encoder import Encoder
from serving.fusion import Fusion
from serving.shards import ShardedIndex
from serving.snapshot import Snapshot

Rankings = list[list[str]]


def bm25_in_index_order(index: ShardedIndex, documents: Mapping[str, str], source: str):  # -> bm25s.BM25
    """BM25 whose document g is the index's global row g; every indexed item needs a document."""
    ids = index.global_ids()
    missing = [item for item in ids if item not in documents]
    if missing:
        raise KeyError(f"{source}: {len(missing)} indexed item(s) have no document, e.g. {missing[:5]}")
    return build_bm25([documents[item] for item in ids])


def local_snapshot(index: str | Path, encoder: str | Path, documents: Mapping[str, str],
                   fusion: Fusion | None = None, threads: int | None = None) -> Snapshot:
    """A Snapshot over the index and encoder folders, with BM25 built over `documents` (item id -> text);
    it searches dense unless given a fusion."""
    opened = ShardedIndex.open(index)
    return Snapshot(opened, Encoder.load(encoder, "int8", threads), bm25_in_index_order(opened, documents, str(index)),
                    fusion or Fusion("dense"))


def rankings(snapshot: Snapshot, texts: Sequence[str], fusions: Sequence[Fusion], k: int) -> dict[Fusion, Rankings]:
    """Item-id rankings (top k) of every query under every fusion; each query's candidates are fetched once."""
    ids = snapshot.index.global_ids()
    vectors = snapshot.encoder.encode(list(texts))
    out: dict[Fusion, Rankings] = {fusion: [] for fusion in fusions}  # equal fusions share one entry
    for text, vector in zip(texts, vectors):
        candidates = snapshot.candidates(text, vector, k)
        for fusion in out:
            rows, _ = snapshot.ranked(text, vector, fusion, k, candidates=candidates)
            out[fusion].append([ids[row] for row in rows.tolist()])
    return out
