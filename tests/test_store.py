"""serving.store: the LATEST pointer moves only by compare-and-swap, on a local folder and on S3 (moto)."""

from __future__ import annotations

import threading

import pytest

from serving.manifest import ManifestError
from serving.store import Pointer, PointerConflict, Store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:
    root = str(tmp_path / "published") if request.param == "local" else request.getfixturevalue("s3_root")
    return Store(root)


def test_pointer_is_created_once_then_swapped_only_from_what_was_read(store):
    assert store.latest("fashion") is None
    store.swap_latest("fashion", "snap-a", None)
    first = store.latest("fashion")
    assert first is not None and first.snapshot_id == "snap-a"
    with pytest.raises(PointerConflict, match="another publisher won"):
        store.swap_latest("fashion", "snap-b", None)  # it exists now
    store.swap_latest("fashion", "snap-b", first)
    assert store.latest("fashion").snapshot_id == "snap-b"
    with pytest.raises(PointerConflict):
        store.swap_latest("fashion", "snap-c", first)  # stale: LATEST moved to snap-b since `first`
    assert store.latest("fashion").snapshot_id == "snap-b"


def test_concurrent_swaps_from_the_same_read_have_exactly_one_winner(tmp_path):
    store = Store(str(tmp_path / "published"))
    store.swap_latest("movies", "base", None)
    seen = store.latest("movies")
    barrier, winners, losers = threading.Barrier(8), [], []

    def publisher(i: int) -> None:
        barrier.wait()
        try:
            store.swap_latest("movies", f"snap-{i}", seen)
            winners.append(i)
        except PointerConflict:
            losers.append(i)

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 7
    assert store.latest("movies").snapshot_id == f"snap-{winners[0]}"


def test_unsafe_names_and_pointer_contents_are_refused(store, tmp_path):
    with pytest.raises(ManifestError, match="not a safe name"):
        store.swap_latest("fashion", "../evil", None)
    with pytest.raises(ManifestError, match="not a safe name"):
        store.latest("../fashion")
    evil = tmp_path / "LATEST"
    evil.write_text("../../etc\n")
    store.put_file(evil, "fashion", "LATEST")
    with pytest.raises(ManifestError, match="LATEST: snapshot id"):
        store.latest("fashion")


def test_snapshots_lists_only_complete_ones_oldest_first(store, tmp_path):
    for name, complete in (("20260102T000000000000Z-bb", True), ("20260101T000000000000Z-aa", True),
                           ("20260103T000000000000Z-cc", False)):
        source = tmp_path / f"{name}.bin"
        source.write_bytes(b"x")
        store.put_file(source, "fashion", name, "index/shard.bin")
        if complete:
            store.put_file(source, "fashion", name, "manifest.json")
    store.swap_latest("fashion", "20260102T000000000000Z-bb", None)
    assert store.snapshots("fashion") == ["20260101T000000000000Z-aa", "20260102T000000000000Z-bb"]
    store.delete_snapshot("fashion", "20260101T000000000000Z-aa")
    assert store.snapshots("fashion") == ["20260102T000000000000Z-bb"]
    assert store.latest("fashion") == Pointer("20260102T000000000000Z-bb", store.latest("fashion").token)


def test_a_delete_that_keeps_losing_entries_to_another_deleter_finishes(store, tmp_path, monkeypatch):
    """Two prunes deleting one snapshot: each of ours trips over a file the other took first, 5 times in a row."""
    source = tmp_path / "x.bin"
    source.write_bytes(b"x")
    for name in ("index/shard-0000.faiss", "index/shard-0001.faiss", "bm25/vocab.json", "metrics.json",
                 "manifest.json"):
        store.put_file(source, "fashion", "20260101T000000000000Z-aa", name)
    rm, raced = store.fs.rm, []

    def racing_rm(path, recursive=False, **kwargs):
        left = sorted(store.fs.find(path))
        if len(raced) < 5 and len(left) > 1:
            raced.append(left[-1])
            rm(left[-1])  # the other deleter
            raise FileNotFoundError(left[-1])
        return rm(path, recursive=recursive, **kwargs)

    monkeypatch.setattr(store.fs, "rm", racing_rm)
    store.delete_snapshot("fashion", "20260101T000000000000Z-aa")  # was FileNotFoundError from its 4th try
    assert len(raced) == 4 and not store.exists("fashion", "20260101T000000000000Z-aa")
