"""The shipped query path (serving.snapshot.Snapshot) over the pipeline's local folders.

The `fusion` stage tunes it and `evaluate` scores it through the reader's own code: the INT8 encoder, the
sharded HNSW index at its tuned efSearch, and BM25 and the popularity prior over the documents in global-row
order, as `publish` packs them (with these same functions). So the numbers are those of what a reader of the
published snapshot answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipelines.common.queries import Rankings
from pipelines.common.schemas import POPULARITY, conform
from serving.bm25 import build_bm25
from serving.encoder import Encoder
from serving.fusion import Fusion
from serving.shards import ShardedIndex
from serving.snapshot import Snapshot


def bm25_in_index_order(index: ShardedIndex, documents: Mapping[str, str], source: str):  # -> bm25s.BM25
    """BM25 whose document g is the index's global row g; every indexed item needs a document."""
    ids = index.global_ids()
    missing = [item for item in ids if item not in documents]
    if missing:
        raise KeyError(f"{source}: {len(missing)} indexed item(s) have no document, e.g. {missing[:5]}")
    return build_bm25([documents[item] for item in ids])


def positives_in_index_order(index: ShardedIndex, popularity: str | Path) -> np.ndarray:
    """The pairs stage's popularity.parquet as positives whose entry g is the index's global row g; every
    indexed item needs a count."""
    table = conform(pq.read_table(popularity), POPULARITY, str(popularity))
    counts = dict(zip(table["item_id"].to_pylist(), table["positives"].to_pylist()))
    ids = index.global_ids()
    missing = [item for item in ids if item not in counts]
    if missing:
        raise KeyError(f"{popularity}: {len(missing)} indexed item(s) have no popularity count, e.g. {missing[:5]}")
    return np.array([counts[item] for item in ids], dtype=np.int64)


def local_snapshot(index: str | Path, encoder: str | Path | Encoder, documents: Mapping[str, str],
                   fusion: Fusion | None = None, threads: int | None = None,
                   popularity: str | Path | None = None) -> Snapshot:
    """A Snapshot over the index folder and the encoder (a folder: its INT8 model, on `threads`), with BM25 built
    over `documents` (item id -> text) and the prior over `popularity` (popularity.parquet; None: no prior); it
    searches dense unless given a fusion."""
    opened = ShardedIndex.open(index)
    positives = None if popularity is None else positives_in_index_order(opened, popularity)
    loaded = encoder if isinstance(encoder, Encoder) else Encoder.load(encoder, "int8", threads)
    return Snapshot(opened, loaded, bm25_in_index_order(opened, documents, str(index)), fusion or Fusion("dense"),
                    positives=positives)


def rankings(snapshot: Snapshot, texts: Sequence[str], fusions: Sequence[Fusion], k: int) -> dict[Fusion, Rankings]:
    """Item-id rankings (top k) of every query under every fusion; each query's candidates (and named items'
    neighbours) are fetched once."""
    ids = snapshot.index.global_ids()
    vectors = snapshot.encoder.encode(list(texts))
    out: dict[Fusion, Rankings] = {fusion: [] for fusion in fusions}  # equal fusions share one entry
    links = any(fusion.link_weight for fusion in out)
    for text, vector in zip(texts, vectors):
        candidates = snapshot.candidates(text, vector, k)
        named = snapshot.named(text, k) if links else []
        for fusion in out:
            rows, _ = snapshot.ranked(text, vector, fusion, k, candidates=candidates, named=named)
            out[fusion].append([ids[row] for row in rows.tolist()])
    return out
