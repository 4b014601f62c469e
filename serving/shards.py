"""The on-disk sharded vector index: writer, memory-mapped reader and exact scatter-gather search.

A folder holds N shards; an item's shard is a stable hash of its id (blake2b, never Python's `hash`):

  index.json          the manifest (`Manifest`): format, dim, metric, count, efSearch, HNSW params, files
  shard-0000.faiss    FAISS IndexHNSWFlat, inner product over L2-normalised vectors (= cosine);
                      the FAISS id of a vector is its row number inside the shard
  shard-0000.arrow    Arrow IPC file of display fields (`METADATA`) in FAISS-id order: row r describes id r
  ids.arrow           item_id -> (shard, row), sorted by item_id, for item-to-item lookups

Shards build independently (`write_shard`), so a process pool or many machines can build them; the
manifest is written last (`write_manifest`). The writer writes into the folder it is given: callers
wanting an all-or-nothing update write to a fresh folder and rename it. Everything reads memory-mapped.

Search runs every shard (HNSW, or exact over the shard's stored vectors) and merges the per-shard top-k
into the global top-k: each shard's top-k holds every global top-k member it owns, so the merge is exact.
An optional per-shard allow-list of rows restricts the search inside FAISS (hard filters).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa

from serving.manifest import check_name

FORMAT = "semrec-shards/1"
MANIFEST_FILE = "index.json"
ID_MAP_FILE = "ids.arrow"
METRIC = "inner_product"

# Below this many allowed rows a shard is scored exactly: filtered HNSW on a tiny allow-list walks
# through disallowed nodes and can stop with fewer than k hits, while scoring the rows directly is
# exact and, at this size, cheaper than the graph walk.
EXACT_FILTER_MAX_ROWS = 2048

METADATA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("creator", pa.string()),
        pa.field("categories", pa.list_(pa.string())),
        pa.field("year", pa.int32()),
        pa.field("price", pa.float64()),
        pa.field("url", pa.string()),
        pa.field("attributes", pa.string()),  # JSON object text
    ]
)

ID_MAP = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
    ]
)


def shard_of(item_id: str, n_shards: int) -> int:
    """The shard that owns `item_id`: blake2b, so the same on every machine and Python run."""
    digest = hashlib.blake2b(item_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def plan_shards(item_ids: Sequence[str], n_shards: int) -> list[np.ndarray]:
    """For each shard, the input positions it owns in input order (its FAISS ids are 0..len-1)."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, not {n_shards}")
    owner = np.fromiter((shard_of(i, n_shards) for i in item_ids), dtype=np.int64, count=len(item_ids))
    return [np.flatnonzero(owner == s) for s in range(n_shards)]


def shard_files(shard: int) -> tuple[str, str]:
    """(FAISS index file, Arrow metadata file) of shard number `shard`."""
    return f"shard-{shard:04d}.faiss", f"shard-{shard:04d}.arrow"


@dataclass(frozen=True)
class ShardEntry:
    index: str
    metadata: str
    count: int


@dataclass(frozen=True)
class Manifest:
    """`index.json`. `extra` carries keys added by later stages (publish) through read and write."""

    dim: int
    count: int
    ef_search: int
    m: int
    ef_construction: int
    shards: tuple[ShardEntry, ...]
    metric: str = METRIC
    id_map: str = ID_MAP_FILE
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        extra = body.pop("extra")
        return {**extra, **body}

    def files(self) -> list[str]:
        """Every file this index reads, relative to its folder."""
        return [self.id_map, *(name for shard in self.shards for name in (shard.index, shard.metadata))]

    @classmethod
    def from_json(cls, raw: dict[str, Any], source: str = MANIFEST_FILE) -> Manifest:
        """Parse and check; every file named must be a plain name inside the index folder (ManifestError)."""
        if raw.get("format") != FORMAT:
            raise ValueError(f"{source}: format {raw.get('format')!r}, this reader reads {FORMAT!r}")
        if raw.get("metric") != METRIC:
            raise ValueError(f"{source}: metric {raw.get('metric')!r}, only {METRIC!r} is supported")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        try:
            shards = tuple(ShardEntry(str(s["index"]), str(s["metadata"]), int(s["count"]))
                           for s in raw["shards"])
            manifest = cls(dim=int(raw["dim"]), count=int(raw["count"]), ef_search=int(raw["ef_search"]),
                           m=int(raw["m"]), ef_construction=int(raw["ef_construction"]), shards=shards,
                           metric=raw["metric"], id_map=str(raw["id_map"]), format=raw["format"],
                           extra={k: v for k, v in raw.items() if k not in known})
        except KeyError as err:
            raise ValueError(f"{source}: missing key {err}") from err
        for name in manifest.files():  # no `..`, no `/`, no absolute path: nothing outside the folder
            check_name(name, f"{source}: file")
        return manifest

    @classmethod
    def read(cls, folder: str | Path) -> Manifest:
        path = Path(folder) / MANIFEST_FILE
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")), str(path))

    def write(self, folder: str | Path) -> None:
        text = json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"
        (Path(folder) / MANIFEST_FILE).write_text(text, encoding="utf-8")


def conform_metadata(table: pa.Table, source: str) -> pa.Table:
    """`table` cast to METADATA, naming the source and column on failure."""
    missing = [name for name in METADATA.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{source}: metadata lacks column(s) {missing}")
    try:
        return table.select(METADATA.names).cast(METADATA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise ValueError(f"{source}: metadata does not fit the shard schema: {err}") from err


def build_hnsw(vectors: np.ndarray, m: int, ef_construction: int) -> faiss.IndexHNSWFlat:
    """An inner-product HNSW graph over `vectors` (row i gets FAISS id i)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(vectors)
    return index


def write_shard(folder: str | Path, shard: int, vectors: np.ndarray, metadata: pa.Table,
                m: int, ef_construction: int) -> ShardEntry:
    """Build and write one shard: `vectors` row r and `metadata` row r become FAISS id r."""
    if len(vectors) != metadata.num_rows:
        raise ValueError(f"shard {shard}: {len(vectors)} vectors but {metadata.num_rows} metadata rows")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index_file, metadata_file = shard_files(shard)
    table = conform_metadata(metadata, f"shard {shard}")
    faiss.write_index(build_hnsw(vectors, m, ef_construction), str(folder / index_file))
    with pa.OSFile(str(folder / metadata_file), "wb") as sink, pa.ipc.new_file(sink, METADATA) as writer:
        writer.write_table(table)
    return ShardEntry(index_file, metadata_file, len(vectors))


def write_manifest(folder: str | Path, shards: Sequence[ShardEntry], dim: int, ef_search: int,
                   m: int, ef_construction: int) -> Manifest:
    """Write the id map (from the shards' metadata files) and `index.json`; call after every shard."""
    folder = Path(folder)
    parts = []
    for number, entry in enumerate(shards):
        ids = read_arrow(folder / entry.metadata).column("item_id")
        parts.append(pa.table({"item_id": ids, "shard": pa.array(np.full(len(ids), number, np.int32)),
                               "row": pa.array(np.arange(len(ids), dtype=np.int64))}, schema=ID_MAP))
    id_map = pa.concat_tables(parts).sort_by("item_id")
    duplicated = id_map.num_rows - len(id_map.column("item_id").unique())
    if duplicated:
        raise ValueError(f"{folder}: {duplicated} item_id(s) appear more than once across shards")
    with pa.OSFile(str(folder / ID_MAP_FILE), "wb") as sink, pa.ipc.new_file(sink, ID_MAP) as writer:
        writer.write_table(id_map)
    manifest = Manifest(dim=dim, count=id_map.num_rows, ef_search=ef_search, m=m,
                        ef_construction=ef_construction, shards=tuple(shards))
    manifest.write(folder)
    return manifest


def read_arrow(path: str | Path) -> pa.Table:
    """A whole Arrow IPC file, memory-mapped (zero-copy: pages load as rows are touched)."""
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()


@dataclass(frozen=True)
class Hits:
    """Top-k per query, best first. Slots past the last hit hold shard -1, row -1 and score -inf."""

    scores: np.ndarray  # (n_queries, k) float32
    shards: np.ndarray  # (n_queries, k) int32
    rows: np.ndarray  # (n_queries, k) int64

    def found(self, query: int) -> np.ndarray:
        """Positions 0..n-1 of the real hits of query number `query`."""
        return np.flatnonzero(self.rows[query] >= 0)


def search_shard(index: faiss.IndexHNSWFlat, queries: np.ndarray, k: int, ef_search: int,
                 allow: np.ndarray | None = None, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the top-k rows of one shard; `allow` is a boolean mask over its rows."""
    selector = None
    if allow is not None:
        if allow.dtype != np.bool_ or allow.shape != (index.ntotal,):
            raise ValueError(f"allow must be a bool mask of shape ({index.ntotal},), not "
                             f"{allow.dtype} {allow.shape}")
        selector = faiss.IDSelectorBitmap(np.packbits(allow, bitorder="little"))
        exact = exact or int(allow.sum()) <= EXACT_FILTER_MAX_ROWS
    if exact:
        storage = faiss.downcast_index(index.storage)
        scores, rows = storage.search(queries, k, params=faiss.SearchParameters(sel=selector))
    else:
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef_search)
        scores, rows = index.search(queries, k, params=params)
    scores[rows < 0] = -np.inf
    return scores, rows


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> Hits:
    """The global top-k from each shard's (scores, rows); ties keep shard order, then shard rank."""
    scores = np.concatenate([s for s, _ in parts], axis=1)
    rows = np.concatenate([r for _, r in parts], axis=1)
    shards = np.concatenate([np.full(r.shape, n, dtype=np.int32) for n, (_, r) in enumerate(parts)], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    rows = np.take_along_axis(rows, order, axis=1)
    shards = np.where(rows < 0, -1, np.take_along_axis(shards, order, axis=1)).astype(np.int32)
    return Hits(np.take_along_axis(scores, order, axis=1), shards, rows.astype(np.int64))


@dataclass(frozen=True)
class Shard:
    index: faiss.IndexHNSWFlat  # vectors memory-mapped
    metadata: pa.Table  # memory-mapped, row r = FAISS id r


class ShardedIndex:
    """A read-only sharded index folder, memory-mapped."""

    def __init__(self, folder: Path, manifest: Manifest, shards: tuple[Shard, ...]):
        self.folder = folder
        self.manifest = manifest
        self.shards = shards

    @classmethod
    def open(cls, folder: str | Path, manifest: Manifest | None = None) -> ShardedIndex:
        """Open `folder`, memory-mapped; `manifest`: its index.json, when the caller has read and checked it."""
        folder = Path(folder)
        manifest = manifest or Manifest.read(folder)
        shards = []
        for entry in manifest.shards:
            index = faiss.read_index(str(folder / entry.index), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
            metadata = read_arrow(folder / entry.metadata)
            if index.ntotal != entry.count or metadata.num_rows != entry.count or index.d != manifest.dim:
                raise ValueError(f"{folder}: shard {entry.index} holds {index.ntotal} vectors of dim {index.d} "
                                 f"and {metadata.num_rows} metadata rows; manifest says {entry.count} x "
                                 f"{manifest.dim}")
            shards.append(Shard(index, metadata))
        return cls(folder, manifest, tuple(shards))

    def __len__(self) -> int:
        return self.manifest.count

    @property
    def dim(self) -> int:
        return self.manifest.dim

    def with_ef_search(self, ef_search: int) -> ShardedIndex:
        """The same shards searched with another default efSearch (for tuning)."""
        return ShardedIndex(self.folder, replace(self.manifest, ef_search=ef_search), self.shards)

    def search(self, queries: np.ndarray, k: int, allow: Sequence[np.ndarray | None] | None = None,
               exact: bool = False) -> Hits:
        """Top-k over all shards for (n, dim) float32 L2-normalised `queries`.

        `allow[s]`, when given and not None, is a bool mask over shard s's rows: only those rows may be
        returned (a shard whose mask is all False is skipped). `exact` scores every (allowed) row
        instead of walking the HNSW graph: the ground truth that efSearch is tuned against.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (n, {self.dim}), not {queries.shape}")
        if k < 1:
            raise ValueError(f"k must be >= 1, not {k}")
        if allow is not None and len(allow) != len(self.shards):
            raise ValueError(f"allow has {len(allow)} masks for {len(self.shards)} shards")
        empty = (np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
        parts = []
        for number, shard in enumerate(self.shards):
            mask = None if allow is None else allow[number]
            if shard.index.ntotal == 0 or (mask is not None and not mask.any()):
                parts.append(empty)
            else:
                parts.append(search_shard(shard.index, queries, k, self.manifest.ef_search, mask, exact))
        return merge_topk(parts, k)

    @cached_property
    def _locations(self) -> dict[str, tuple[int, int]]:
        table = read_arrow(self.folder / self.manifest.id_map)
        return dict(zip(table.column("item_id").to_pylist(),
                        zip(table.column("shard").to_pylist(), table.column("row").to_pylist())))

    def locate(self, item_id: str) -> tuple[int, int]:
        """(shard, row) of `item_id`; KeyError naming it when absent."""
        try:
            return self._locations[item_id]
        except KeyError:
            raise KeyError(f"{self.folder}: no item {item_id!r}") from None

    def vector(self, item_id: str) -> np.ndarray:
        """The stored (dim,) vector of `item_id` (for item-to-item queries)."""
        shard, row = self.locate(item_id)
        return self.shards[shard].index.reconstruct(row)

    def metadata(self, shards: np.ndarray, rows: np.ndarray) -> pa.Table:
        """METADATA rows for parallel (shard, row) arrays, in that order (e.g. one query's hits)."""
        shards, rows = np.asarray(shards), np.asarray(rows)
        if shards.shape != rows.shape or shards.ndim != 1:
            raise ValueError(f"shards and rows must be 1-d and equal length: {shards.shape} vs {rows.shape}")
        if len(rows) == 0:
            return METADATA.empty_table()
        if (shards < 0).any() or (rows < 0).any():
            raise ValueError("shards/rows hold -1 (empty hit slots): select Hits.found(query) first")
        pieces = [self.shards[s].metadata.slice(r, 1) for s, r in zip(shards.tolist(), rows.tolist())]
        return pa.concat_tables(pieces)

    @cached_property
    def _shard_ids(self) -> list[list[str]]:
        return [shard.metadata.column("item_id").to_pylist() for shard in self.shards]

    def global_ids(self) -> list[str]:
        """Item ids by global row: shard 0's rows, then shard 1's, ... (the snapshot's BM25 document order)."""
        return [item for ids in self._shard_ids for item in ids]

    def item_ids(self, hits: Hits) -> list[list[str]]:
        """The item ids of every query's hits, best first (empty slots dropped)."""
        ids = self._shard_ids
        return [[ids[s][r] for s, r in zip(hits.shards[q].tolist(), hits.rows[q].tolist()) if r >= 0]
                for q in range(len(hits.rows))]
