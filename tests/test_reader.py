"""serving.reader on the hand-checked tiny catalog (tests/snapshot_fixture.py).

Dense scores by hand: a query/item vector is the normalised mean of its known words' axes, so
"red dress" scores i01 "red summer dress" 2/sqrt(6) = 0.816, i02 "red evening dress party" 0.707, ...
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from snapshot_fixture import publish_tiny

from serving.cache import evict, pull
from serving.filters import FilterError
from serving.fusion import Fusion
from serving.manifest import ManifestError, sha256_file
from serving.reader import Reader
from serving.shards import ShardedIndex
from serving.snapshot import Snapshot
from serving.store import Store


@pytest.fixture(scope="module")
def reader(published_root: str, tmp_path_factory: pytest.TempPathFactory) -> Reader:
    return Reader.open(published_root, "fashion", cache_dir=tmp_path_factory.mktemp("cache"))


def ids(hits) -> list[str]:
    return [hit.item_id for hit in hits]


def cached_files(cache: Path) -> list[Path]:
    """Files in a cache folder, lease files (`.<id>~lease`) aside."""
    return [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith("~lease")]


def cached_snapshots(cache: Path) -> set[str]:
    return {p.name for p in (cache / "fashion").iterdir() if not p.name.startswith(".")}


def test_dense_search_returns_hand_ranked_items_with_metadata(reader):
    hits = reader.search("red dress", k=2, mode="dense")
    assert ids(hits) == ["i01", "i02"]
    assert [round(h.score, 3) for h in hits] == [round(2 / np.sqrt(6), 3), round(1 / np.sqrt(2), 3)]
    assert (hits[0].title, hits[0].creator, hits[0].categories, hits[0].year, hits[0].price) == (
        "Red summer dress", "Alba", ["Dresses"], 2019, 80.0)
    assert hits[0].attributes == {"material": "cloth"}
    assert len(reader.search("red dress", k=12, mode="dense")) == len(reader.search("red dress", k=12)) == 12


@pytest.mark.parametrize("text, filters, expected", [
    ("red dress", {"creator": "Alba"}, ["i01", "i03", "i04"]),  # only 3 Alba items: all of them, ranked
    ("red dress", {"categories": ["Jackets"]}, ["i11", "i06", "i10"]),  # i11 "red denim jacket coat": "red"
    ("red party", {"categories": ["Party", "Knits"]}, ["i09", "i04"]),  # any of the listed categories
    ("red dress", {"year_min": 2020, "year_max": 2021}, ["i02", "i03", "i05", "i08"]),
    ("red dress", {"price_max": 70}, ["i03", "i05", "i07", "i08"]),  # i11 has no price: excluded
    ("red dress", {"creator": "Alba", "price_min": 85}, ["i04"]),
    ("red dress", {"creator": "Nobody"}, []),
])
def test_hard_filters_return_exactly_the_matching_items(reader, text, filters, expected):
    hits = reader.search(text, k=10, filters=filters, mode="dense")
    assert ids(hits)[:1] == expected[:1]  # the best match first
    assert sorted(ids(hits)) == sorted(expected)  # all matches, never fewer than k when k exist
    assert ids(reader.search(text, k=2, filters=filters, mode="dense")) == ids(hits)[:2]
    assert sorted(ids(reader.search(text, k=10, filters=filters))) == sorted(expected)  # fused: the same items


def test_a_short_filtered_graph_walk_is_completed_by_exact_search(reader, monkeypatch):
    search = ShardedIndex.search

    def short_walk(self, queries, k, allow=None, exact=False):  # HNSW stopping early on a sparse allow-list
        hits = search(self, queries, k, allow, exact)
        if not exact:
            hits.rows[:, 1:], hits.shards[:, 1:] = -1, -1
        return hits

    monkeypatch.setattr(ShardedIndex, "search", short_walk)
    assert ids(reader.search("red dress", k=3, filters={"creator": "Alba"}, mode="dense")) == ["i01", "i03", "i04"]


def test_unknown_or_mistyped_filters_are_refused(reader):
    with pytest.raises(FilterError, match="unknown filter field"):
        reader.search("red dress", filters={"colour": "red"})
    with pytest.raises(FilterError, match="year_min"):
        reader.search("red dress", filters={"year_min": "1990"})
    with pytest.raises(FilterError, match="above"):
        reader.search("red dress", filters={"price_min": 100, "price_max": 50})


def test_the_default_search_is_the_published_fusion_which_finds_what_only_bm25_can_see(reader):
    # "sku77" is unknown to the encoder: dense prefers the linen shirt (1/sqrt2 > 1/sqrt3) ...
    assert ids(reader.search("linen sku77", k=1, mode="dense")) == ["i07"]
    # ... BM25 knows only i08 carries the code: the fusion stage chose the hybrid (weight 0.5) on validation,
    # the manifest carries it, and a search without a mode uses it
    assert reader.manifest.fusion == Fusion("hybrid", 0.5)
    assert ids(reader.search("linen sku77", k=1)) == ids(reader.search("linen sku77", k=1, mode="hybrid")) == ["i08"]
    # RRF: i07 and i08 swap ranks between the two lists (1/61 + 1/62 each); the tie goes to the dense score
    assert ids(reader.search("linen sku77", k=1, mode="rrf")) == ["i07"]
    assert ids(reader.search("linen sku77", k=2, mode="hybrid", filters={"creator": "Bruno"})) == ["i08", "i07"]
    # only 4 items cost >= 100 and none shares a word with the query: all 4, in any order
    assert sorted(ids(reader.search("linen sku77", k=5, mode="hybrid", filters={"price_min": 100}))) == [
        "i02", "i06", "i10", "i12"]
    with pytest.raises(ValueError, match="mode"):
        reader.search("linen", mode="sparse")


def test_more_like_excludes_the_item_itself(reader):
    assert set(ids(reader.more_like("i01", k=2))) == {"i03", "i12"}  # share "summer dress": 2/3
    assert ids(reader.more_like("i01", k=1, filters={"creator": "Bruno"})) == ["i02"]
    with pytest.raises(KeyError, match="nope"):
        reader.more_like("nope")


def test_tampered_shard_is_refused_and_the_old_snapshot_keeps_serving(fixture_inputs, tmp_path):
    root = str(tmp_path / "published")
    assert publish_tiny(fixture_inputs, root, recall=0.5) == 0
    reader = Reader.open(root, "fashion", cache_dir=tmp_path / "cache")
    old = reader.manifest.snapshot_id
    assert publish_tiny(fixture_inputs, root, recall=0.6) == 0
    new = Store(root).latest("fashion").snapshot_id
    shard = Path(root) / "fashion" / new / "index" / "shard-0000.faiss"
    data = bytearray(shard.read_bytes())
    data[-8] ^= 0xFF  # same size, one flipped byte
    shard.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"index/shard-0000.faiss: sha256 .* does not match"):
        reader.refresh()
    assert reader.manifest.snapshot_id == old
    assert ids(reader.search("red dress", k=2)) == ["i01", "i02"]
    assert not (tmp_path / "cache" / "fashion" / new).exists()  # nothing half-verified is cached
    with pytest.raises(ManifestError, match="sha256"):
        Reader.open(root, "fashion", cache_dir=tmp_path / "cache2")


@pytest.mark.parametrize("bad_path", ["../../outside.txt", "/etc/passwd", "index/../../x", "C:/x", "a\\..\\b"])
def test_manifest_paths_outside_the_snapshot_are_refused(published_root, tmp_path, bad_path):
    root = tmp_path / "published"
    shutil.copytree(published_root, root)
    snapshot = root / "fashion" / Store(str(root)).latest("fashion").snapshot_id
    manifest = json.loads((snapshot / "manifest.json").read_text())
    manifest["files"][0]["path"] = bad_path
    (snapshot / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="unsafe file path"):
        Reader.open(str(root), "fashion", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "outside.txt").exists() and cached_files(tmp_path / "cache") == []


def test_hot_swap_under_concurrent_queries_drops_nothing(fixture_inputs, tmp_path):
    root = str(tmp_path / "published")
    assert publish_tiny(fixture_inputs, root, recall=0.5) == 0
    reader = Reader.open(root, "fashion", cache_dir=tmp_path / "cache")
    pinned = Reader.open(root, "fashion", version=reader.manifest.snapshot_id, cache_dir=tmp_path / "cache")
    failures, served, stop = [], set(), threading.Event()

    def query() -> None:
        while not stop.is_set():
            try:
                snapshot = reader.snapshot
                hits = snapshot.search("red dress", k=3)
                assert ids(hits)[:2] == ["i01", "i02"]
                served.add(snapshot.snapshot_id)
            except Exception as err:  # noqa: BLE001 - every failure is counted
                failures.append(err)

    threads = [threading.Thread(target=query) for _ in range(4)]
    for thread in threads:
        thread.start()
    reader.start_polling(0.05)
    try:
        for recall in (0.6, 0.7):
            assert publish_tiny(fixture_inputs, root, recall=recall) == 0
            live = Store(root).latest("fashion").snapshot_id
            for _ in range(200):
                if reader.manifest.snapshot_id == live:
                    break
                stop.wait(0.05)
            assert reader.manifest.snapshot_id == live
    finally:
        reader.stop_polling()
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert len(served) == 3  # queries ran on all three snapshots
    assert pinned.refresh() is False and pinned.manifest.snapshot_id != reader.manifest.snapshot_id  # pinned
    # all three stay: the current, the previous (a quick rollback) and the oldest, which `pinned` leases
    assert cached_snapshots(tmp_path / "cache") == served
    oldest = pinned.manifest.snapshot_id
    del pinned  # its lease goes with its snapshot: the next eviction may take the oldest
    assert evict(tmp_path / "cache", "fashion", keep=served - {oldest}) == [oldest]
    assert cached_snapshots(tmp_path / "cache") == served - {oldest}


def test_query_cli_prints_the_ranked_hits(published_root, tmp_path, capsys):
    from serving.cli import main

    common = ["--root", published_root, "--catalog", "fashion", "--cache", str(tmp_path / "cache")]
    assert main(["red dress", "--k", "2", "--filter", "creator=Alba", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "[i01]" in lines[1] and "[i03]" in lines[2] and len(lines) == 3
    assert main(["linen sku77", "--k", "1", "--json", *common]) == 0  # the snapshot's fusion by default
    assert json.loads(capsys.readouterr().out)["items"][0]["item_id"] == "i08"
    assert main(["--similar-to", "i01", "--k", "1", "--filter", "categories=Dresses,Knits",
                 "--filter", "creator=Bruno", *common]) == 0
    assert "[i02]" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["red", "--filter", "colour=red", *common])
    assert "unknown filter field" in capsys.readouterr().err


def resign(snapshot: Path, path: str) -> None:
    """Update manifest.json's size and sha256 of `path`, as a publisher who means harm would."""
    manifest = json.loads((snapshot / "manifest.json").read_text())
    entry = next(e for e in manifest["files"] if e["path"] == path)
    entry["bytes"], entry["sha256"] = (snapshot / path).stat().st_size, sha256_file(snapshot / path)
    (snapshot / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("field, outside", [("metadata", "absolute"), ("metadata", "relative"),
                                            ("id_map", "absolute"), ("index", "relative")])
def test_index_json_paths_outside_the_snapshot_are_refused(published_root, tmp_path, field, outside):
    root = tmp_path / "published"
    shutil.copytree(published_root, root)
    snapshot = root / "fashion" / Store(str(root)).latest("fashion").snapshot_id
    names = {"metadata": "shard-0000.arrow", "id_map": "ids.arrow", "index": "shard-0000.faiss"}
    target = snapshot / "index" / names[field]  # a real file, outside the snapshot once it is cached
    name = str(target) if outside == "absolute" else os.path.relpath(target, tmp_path / "cache" / "fashion" / "x" / "index")
    index = json.loads((snapshot / "index" / "index.json").read_text())
    if field == "id_map":
        index["id_map"] = name
    else:
        index["shards"][0][field] = name
    (snapshot / "index" / "index.json").write_text(json.dumps(index))
    resign(snapshot, "index/index.json")
    with pytest.raises(ManifestError, match="not a safe name"):
        reader = Reader.open(str(root), "fashion", cache_dir=tmp_path / "cache")
        reader.more_like("i01")  # the id map is read lazily


def test_index_files_must_be_listed_in_the_snapshot_manifest(published_root, tmp_path):
    store = Store(published_root)
    folder, manifest = pull(store, "fashion", store.latest("fashion").snapshot_id, tmp_path / "cache")
    shutil.copy(folder / "index" / "ids.arrow", folder / "index" / "unlisted.arrow")  # unhashed, unvouched-for
    index = json.loads((folder / "index" / "index.json").read_text())
    (folder / "index" / "index.json").write_text(json.dumps({**index, "id_map": "unlisted.arrow"}))
    with pytest.raises(ManifestError, match="lists no file 'index/unlisted.arrow'"):
        Snapshot.open(folder, manifest).more_like("i01")


@pytest.mark.parametrize("field, value", [("dim", True), ("ef_search", True), ("dim", 21.0), ("bytes", True)])
def test_a_manifest_with_a_boolean_or_float_for_an_integer_is_refused(published_root, field, value):
    from serving.manifest import MANIFEST_NAME, Manifest

    store = Store(published_root)
    raw = json.loads(store.read("fashion", store.latest("fashion").snapshot_id, MANIFEST_NAME))
    if field == "bytes":
        raw["files"][0]["bytes"] = value
    else:
        raw[field] = value
    with pytest.raises(ManifestError, match=field):
        Manifest.from_json(json.dumps(raw))


def test_a_failing_poll_logs_one_line_per_failure_not_a_traceback(fixture_inputs, tmp_path, caplog):
    root = str(tmp_path / "published")
    assert publish_tiny(fixture_inputs, root, recall=0.5) == 0
    reader = Reader.open(root, "fashion", cache_dir=tmp_path / "cache")
    assert publish_tiny(fixture_inputs, root, recall=0.6) == 0
    store = Store(root)
    store.put_bytes(b"{}", "fashion", store.latest("fashion").snapshot_id, "encoder", "encoder.json")  # refused
    with caplog.at_level(logging.INFO, logger="semrec.reader"):
        reader.start_polling(0.02)
        try:
            for _ in range(500):
                if reader.health().failed_refreshes >= 3:
                    break
                threading.Event().wait(0.01)
        finally:
            reader.stop_polling()
    failures = [r for r in caplog.records if r.name == "semrec.reader" and r.levelno >= logging.WARNING]
    assert len(failures) >= 3 and reader.health().failed_refreshes >= 3
    for record in failures:
        assert record.exc_info is None and "encoder/encoder.json" in record.getMessage()
