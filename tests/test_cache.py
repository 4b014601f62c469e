"""serving.cache shared by several readers (the default ~/.cache/semrec): leases, crash-safe eviction, repair."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest
from snapshot_fixture import publish_tiny

from serving.cache import evict
from serving.reader import Reader
from serving.store import Store


@pytest.fixture(scope="module")
def three_snapshots(fixture_inputs, tmp_path_factory) -> tuple[str, list[str]]:
    """A local published tree with three snapshots, oldest first (read-only: copy before changing)."""
    root = str(tmp_path_factory.mktemp("published"))
    ids = []
    for recall in (0.5, 0.6, 0.7):
        assert publish_tiny(fixture_inputs, root, recall=recall) == 0
        ids.append(Store(root).latest("fashion").snapshot_id)
    return root, ids


def ids(hits) -> list[str]:
    return [hit.item_id for hit in hits]


def test_a_reader_following_latest_never_evicts_a_snapshot_another_reader_uses(three_snapshots, tmp_path):
    root, (first, second, third) = three_snapshots
    cache = tmp_path / "cache"
    pinned = Reader.open(root, "fashion", version=first, cache_dir=cache)  # another service on the same cache
    live = Store(root)
    live.swap_latest("fashion", first, live.latest("fashion"))  # `following` starts on `first` too
    following = Reader.open(root, "fashion", cache_dir=cache)
    for target in (second, third):
        live.swap_latest("fashion", target, live.latest("fashion"))
        assert following.refresh() is True  # evicts all but {current, previous}, unless leased
    # the id map is read lazily, on the first item lookup: its file must still be there
    assert set(ids(pinned.more_like("i01", k=2))) == {"i03", "i12"}
    assert (cache / "fashion" / first).is_dir()


def test_a_cached_entry_missing_files_is_downloaded_again(published_root, tmp_path):
    cache = tmp_path / "cache"
    reader = Reader.open(published_root, "fashion", cache_dir=cache)
    folder = cache / "fashion" / reader.manifest.snapshot_id
    del reader
    (folder / "index" / "ids.arrow").unlink()  # what a kill -9 in the middle of an eviction used to leave
    (folder / "bm25" / "vocab.index.json").unlink()
    reader = Reader.open(published_root, "fashion", cache_dir=cache)  # was: "delete the folder", forever
    assert ids(reader.more_like("i01", k=1)) in (["i03"], ["i12"])
    assert (folder / "index" / "ids.arrow").is_file()


def test_verify_sha256_rehashes_a_cached_entry_and_repairs_it(published_root, tmp_path):
    cache = tmp_path / "cache"
    reader = Reader.open(published_root, "fashion", cache_dir=cache)
    snapshot_id = reader.manifest.snapshot_id
    del reader
    tokenizer = cache / "fashion" / snapshot_id / "encoder" / "tokenizer.json"
    good = tokenizer.read_bytes()
    tokenizer.write_bytes(good.replace(b'"red"', b'"rex"'))  # bit rot: same size, different bytes
    Reader.open(published_root, "fashion", cache_dir=cache)  # the default checks sizes only
    assert tokenizer.read_bytes() != good
    reader = Reader.open(published_root, "fashion", cache_dir=cache, verify="sha256")
    assert tokenizer.read_bytes() == good
    assert ids(reader.search("red dress", k=2)) == ["i01", "i02"]
    with pytest.raises(ValueError, match="verify"):
        Reader.open(published_root, "fashion", cache_dir=cache, verify="md5")


CACHE_USER = """
import sys
from serving.cache import evict, pull
from serving.store import Store
store, cache = Store(sys.argv[1]), sys.argv[2]
snapshots = sys.argv[3:]
print("ready", flush=True)
while True:  # pull and evict in turn, so a kill lands anywhere in either
    for snapshot_id in snapshots:
        pull(store, "fashion", snapshot_id, cache)
        evict(cache, "fashion", keep={snapshot_id})
"""


def test_processes_killed_while_pulling_or_evicting_never_break_the_cache(three_snapshots, tmp_path):
    root, snapshots = three_snapshots
    cache = tmp_path / "cache"
    rng = random.Random(3)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(5):
        user = subprocess.Popen([sys.executable, "-c", CACHE_USER, root, str(cache), *snapshots],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        assert user.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.5))
        user.kill()
        user.wait()
        for snapshot_id in snapshots:  # every entry opens (repaired if need be) and answers
            reader = Reader.open(root, "fashion", version=snapshot_id, cache_dir=cache)
            assert ids(reader.search("red dress", k=2)) == ["i01", "i02"]
            assert len(reader.more_like("i01", k=2)) == 2
            del reader
    evict(cache, "fashion", keep=set())  # nobody leases anything now: every leftover goes
    assert list((cache / "fashion").iterdir()) == []


def test_an_entry_another_process_leases_survives_its_eviction(three_snapshots, tmp_path):
    root, (first, *_) = three_snapshots
    cache = tmp_path / "cache"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from serving.cache import Lease, pull; from serving.store import Store;"
         "lease = Lease(sys.argv[2], 'fashion', sys.argv[3]); pull(Store(sys.argv[1]), 'fashion', sys.argv[3], "
         "sys.argv[2]); print('held', flush=True); sys.stdin.read()", root, str(cache), first],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == b"held"
        assert evict(cache, "fashion", keep=set()) == []
        assert (cache / "fashion" / first).is_dir()
    finally:
        holder.kill()  # kill -9 drops its lease with it: no stale lease
        holder.wait()
    assert evict(cache, "fashion", keep=set()) == [first]
    assert not (cache / "fashion" / first).exists()
