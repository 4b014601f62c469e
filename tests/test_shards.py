"""The shard format: write, reopen memory-mapped, exact scatter-gather merge, lookups, allow-lists."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pyarrow as pa
import pytest

from serving import shards
from serving.shards import (
    Manifest,
    ShardedIndex,
    merge_topk,
    plan_shards,
    shard_of,
    write_manifest,
    write_shard,
)

N, DIM, SHARDS = 600, 32, 3


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def metadata_table(item_ids: list[str]) -> pa.Table:
    n = len(item_ids)
    return pa.table({
        "item_id": item_ids,
        "title": [f"Title {i}" for i in item_ids],
        "creator": ["Hitchcock" if i % 2 else None for i in range(n)],
        "categories": [["Drama", "Thriller"] if i % 3 else [] for i in range(n)],
        "year": pa.array([1950 + i % 60 for i in range(n)], pa.int32()),
        "price": [None] * n,
        "url": [None] * n,
        "attributes": [json.dumps({"n": i}) for i in range(n)],
    })


def build(folder, vectors: np.ndarray, item_ids: list[str], n_shards: int, ef_search: int = 64) -> ShardedIndex:
    metadata = metadata_table(item_ids)
    entries = [write_shard(folder, s, vectors[rows], metadata.take(rows), m=16, ef_construction=40)
               for s, rows in enumerate(plan_shards(item_ids, n_shards))]
    write_manifest(folder, entries, dim=vectors.shape[1], ef_search=ef_search, m=16, ef_construction=40)
    return ShardedIndex.open(folder)


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(7)
    return unit(rng.normal(size=(N, DIM))), [f"item-{i:04d}" for i in range(N)], unit(rng.normal(size=(20, DIM)))


@pytest.fixture(scope="module")
def index(tmp_path_factory, corpus):
    vectors, ids, _ = corpus
    return build(tmp_path_factory.mktemp("index"), vectors, ids, SHARDS, ef_search=N)


def test_shard_assignment_is_a_stable_partition(corpus):
    _, ids, _ = corpus
    plan = plan_shards(ids, SHARDS)
    assert sorted(np.concatenate(plan).tolist()) == list(range(N))
    assert all(len(rows) > N // SHARDS // 2 for rows in plan)  # hash spreads items
    # blake2b of the id, not Python's per-process salted hash: this value holds on every machine.
    assert shard_of("item-0000", 1000) == int.from_bytes(
        __import__("hashlib").blake2b(b"item-0000", digest_size=8).digest(), "big") % 1000


def test_sharded_search_equals_one_exact_index(index, corpus):
    vectors, ids, queries = corpus
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    want_scores, want_rows = flat.search(queries, 10)
    hits = index.search(queries, 10)  # HNSW with efSearch = N: visits the whole graph
    assert index.item_ids(hits) == [[ids[r] for r in row] for row in want_rows]
    np.testing.assert_allclose(hits.scores, want_scores, rtol=1e-5, atol=1e-6)
    assert index.item_ids(index.search(queries, 10, exact=True)) == index.item_ids(hits)


def test_merge_keeps_global_order_and_pads_missing():
    a = (np.array([[0.9, 0.2]], np.float32), np.array([[4, 1]]))
    b = (np.array([[0.5, -np.inf]], np.float32), np.array([[0, -1]]))
    hits = merge_topk([a, b], k=4)
    assert hits.scores.tolist() == [[pytest.approx(0.9), 0.5, pytest.approx(0.2), -np.inf]]
    assert hits.shards.tolist() == [[0, 1, 0, -1]]
    assert hits.rows.tolist() == [[4, 0, 1, -1]]
    assert hits.found(0).tolist() == [0, 1, 2]


def test_lookup_by_id_and_by_row(index, corpus):
    vectors, ids, _ = corpus
    shard, row = index.locate("item-0123")
    assert index.shards[shard].metadata.column("item_id")[row].as_py() == "item-0123"
    np.testing.assert_array_equal(index.vector("item-0123"), vectors[123])
    table = index.metadata(np.array([shard]), np.array([row]))
    assert table.to_pylist()[0]["title"] == "Title item-0123"
    assert json.loads(table.column("attributes")[0].as_py()) == {"n": 123}
    with pytest.raises(KeyError, match="item-9999"):
        index.locate("item-9999")
    # An item queried by its own vector comes back first: the row/id mapping is consistent end to end.
    hits = index.search(index.vector("item-0123")[None, :], 1)
    assert index.item_ids(hits) == [["item-0123"]]


@pytest.mark.parametrize("keep_every, exact_max_rows", [(2, 0), (150, 2048)])  # inside HNSW; exact fallback
def test_allow_list_restricts_results(index, corpus, monkeypatch, keep_every, exact_max_rows):
    monkeypatch.setattr(shards, "EXACT_FILTER_MAX_ROWS", exact_max_rows)
    vectors, ids, queries = corpus
    allowed_ids = {ids[i] for i in range(0, N, keep_every)}
    allow = [np.array([i in allowed_ids for i in s.metadata.column("item_id").to_pylist()]) for s in index.shards]
    hits = index.search(queries, 10, allow=allow)
    allowed_rows = sorted(int(i.split("-")[1]) for i in allowed_ids)
    want = np.argsort(-(queries @ vectors[allowed_rows].T), axis=1, kind="stable")[:, :10]
    got = index.item_ids(hits)
    assert got == [[ids[allowed_rows[j]] for j in row[:len(got[q])]] for q, row in enumerate(want)]
    assert all(len(row) == min(10, len(allowed_ids)) for row in got)
    nothing = index.search(queries, 5, allow=[np.zeros(len(s.metadata), bool) for s in index.shards])
    assert index.item_ids(nothing) == [[] for _ in queries]


def test_manifest_round_trips_and_keeps_extra_keys(index, tmp_path):
    raw = index.manifest.to_json() | {"snapshot_id": "2024-01-01T00-00-00Z"}
    manifest = Manifest.from_json(raw)
    assert manifest.extra == {"snapshot_id": "2024-01-01T00-00-00Z"}
    assert manifest.to_json() == raw
    assert (manifest.count, manifest.dim, len(manifest.shards)) == (N, DIM, SHARDS)
    with pytest.raises(ValueError, match="format"):
        Manifest.from_json(raw | {"format": "other/9"})


def test_bad_inputs_fail_clearly(index, tmp_path, corpus):
    vectors, ids, queries = corpus
    with pytest.raises(ValueError, match="shape"):
        index.search(queries[:, :5], 3)
    with pytest.raises(ValueError, match="bool mask"):
        index.search(queries, 3, allow=[np.ones(3, bool)] * SHARDS)
    with pytest.raises(ValueError, match="vectors but"):
        write_shard(tmp_path, 0, vectors[:3], metadata_table(ids[:2]), 16, 40)
    with pytest.raises(ValueError, match="more than once"):
        entries = [write_shard(tmp_path, s, vectors[:2], metadata_table(ids[:2]), 16, 40) for s in range(2)]
        write_manifest(tmp_path, entries, DIM, 16, 16, 40)
