"""pipelines.lifecycle under races and crashes: rollback vs retention, concurrent prunes, crash debris, durability,
experiments. Interleavings are forced with hooks (deterministic); the kill -9 loop is seeded and bounded."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from snapshot_fixture import publish_tiny

from pipelines import lifecycle
from pipelines.cli import main as semrec
from serving.cache import pull
from serving.manifest import MANIFEST_NAME, check_name
from serving.store import PointerConflict, Store

TESTS = Path(__file__).parent


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "published") if request.param == "local" else request.getfixturevalue("s3_root")


def publish_n(inputs: dict, root: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        assert publish_tiny(inputs, root, "--force") == 0
        ids.append(Store(root).latest("fashion").snapshot_id)
    return ids


def assert_latest_verifies(root: str) -> str:
    """LATEST names a complete snapshot whose every file matches its manifest: a new reader can start."""
    store = Store(root)
    live = store.latest("fashion").snapshot_id
    with tempfile.TemporaryDirectory() as cache:
        pull(store, "fashion", live, cache)  # downloads and checks every file's sha256
    return live


# --- 1. rollback vs retention --------------------------------------------------------------------------------

def test_rollback_never_leaves_latest_on_a_snapshot_pruned_between_its_check_and_its_swap(
        fixture_inputs, root, monkeypatch):
    a, _, c = publish_n(fixture_inputs, root, 3)
    swap = Store.swap_latest

    def prune_first(self, catalog, snapshot_id, expected):
        if snapshot_id == a:  # the rollback has checked `a`; a concurrent publish's prune runs now
            monkeypatch.setattr(Store, "swap_latest", swap)
            assert a in lifecycle.prune(Store(root), "fashion", keep=1)
        return swap(self, catalog, snapshot_id, expected)

    monkeypatch.setattr(Store, "swap_latest", prune_first)
    with pytest.raises(PointerConflict, match="pruned while rolling back"):
        lifecycle.rollback(Store(root), "fashion", a)
    assert assert_latest_verifies(root) == c


def test_a_prune_racing_a_rollback_keeps_the_snapshot_latest_moved_to(fixture_inputs, root, monkeypatch):
    """The prune hides `a` after the rollback verified it; the rollback swaps before the prune deletes it."""
    a, _, c = publish_n(fixture_inputs, root, 3)
    verified, hidden, swapped = threading.Event(), threading.Event(), threading.Event()
    swap, delete, delete_snapshot = Store.swap_latest, getattr(Store, "delete", None), Store.delete_snapshot

    def swap_after_hide(self, catalog, snapshot_id, expected):
        verified.set()
        assert hidden.wait(30)
        try:
            return swap(self, catalog, snapshot_id, expected)
        finally:
            swapped.set()

    def hook(original):
        def deleting(self, catalog, snapshot_id, *rest):
            if snapshot_id != a or hidden.is_set():
                return original(self, catalog, snapshot_id, *rest)
            assert verified.wait(30)
            original(self, catalog, snapshot_id, *rest)  # hides `a` (deletes all of it, before the fix)
            hidden.set()
            assert swapped.wait(30)
        return deleting

    monkeypatch.setattr(Store, "swap_latest", swap_after_hide)
    monkeypatch.setattr(Store, "delete", hook(delete), raising=False)
    monkeypatch.setattr(Store, "delete_snapshot", hook(delete_snapshot))
    outcome: list[object] = []
    rolling = threading.Thread(target=lambda: outcome.append(_try(lifecycle.rollback, Store(root), "fashion", a)))
    rolling.start()
    lifecycle.prune(Store(root), "fashion", keep=1)
    rolling.join()
    # either the rollback stands (and the prune kept `a`) or it gave way (and LATEST is back at c): never broken
    live = assert_latest_verifies(root)
    assert (live, type(outcome[0])) in {(a, type(None)), (c, PointerConflict)}, (live, outcome)
    if live == a:
        assert a in Store(root).snapshots("fashion")


def _try(function, *args):
    try:
        function(*args)
    except Exception as err:  # noqa: BLE001 - returned for the assertion
        return err
    return None


def test_rollback_verifies_sha256_not_only_sizes(fixture_inputs, root, capsys):
    first, second = publish_n(fixture_inputs, root, 2)
    store = Store(root)
    shard = store.read("fashion", first, "index", "shard-0000.faiss")
    store.fs.pipe_file(store.path("fashion", first, "index", "shard-0000.faiss"),
                       shard[:-8] + bytes([shard[-8] ^ 0xFF]) + shard[-7:])  # same size, one bit flipped
    args = ["publish", "rollback", "--to", first, "--catalog", "fashion", "--root", root,
            "--params", str(fixture_inputs["params"])]
    assert semrec(args) == 4
    assert "index/shard-0000.faiss: sha256" in capsys.readouterr().err
    assert assert_latest_verifies(root) == second


# --- 2. concurrent prunes ------------------------------------------------------------------------------------

def test_a_prune_whose_snapshots_another_prune_deleted_first_succeeds(fixture_inputs, root, monkeypatch):
    ids = publish_n(fixture_inputs, root, 4)
    listed = Store(root).snapshots("fashion")  # both pruners list; the other one deletes first
    assert lifecycle.prune(Store(root), "fashion", keep=1) == ids[1:3]  # ids[0]: pruned by the 4th publish
    with monkeypatch.context() as patched:
        patched.setattr(Store, "snapshots", lambda self, catalog: listed)
        lifecycle.prune(Store(root), "fashion", keep=1)  # was FileNotFoundError, local and S3
    assert Store(root).snapshots("fashion") == ids[3:] and assert_latest_verifies(root) == ids[3]


def test_a_publish_whose_prune_races_another_still_exits_0_with_its_report(fixture_inputs, root, tmp_path,
                                                                            monkeypatch):
    publish_n(fixture_inputs, root, 3)  # keep: 3, so the next publish prunes the oldest
    snapshots = Store.snapshots

    def stale_listing(self, catalog):  # another publisher's prune deletes the same snapshot meanwhile
        found = snapshots(self, catalog)
        monkeypatch.setattr(Store, "snapshots", snapshots)
        lifecycle.prune(Store(root), "fashion", keep=3)
        return found

    monkeypatch.setattr(Store, "snapshots", stale_listing)
    report = tmp_path / "publish.json"
    assert publish_tiny(fixture_inputs, root, "--force", "--report", str(report)) == 0
    assert json.loads(report.read_text())["snapshot_id"] == assert_latest_verifies(root)


# --- 6. crash debris, durability, names ----------------------------------------------------------------------

def test_gc_removes_crash_debris_older_than_the_grace_period_only(fixture_inputs, root, tmp_path):
    live, = publish_n(fixture_inputs, root, 1)
    store = Store(root)
    partial = tmp_path / "partial.bin"
    partial.write_bytes(b"half a snapshot")
    for name in ("20200101T000000000000Z-0000dead", "20200102T000000000000Z-0000beef"):  # no manifest
        store.put_file(partial, "fashion", name, "index", "shard-0000.faiss")
    now = time.time() + 2 * 3600
    assert lifecycle.gc(store, "fashion", grace_s=3 * 3600, now=now) == []  # younger than the grace period
    assert lifecycle.gc(store, "fashion", grace_s=3600, now=now) == [
        "20200101T000000000000Z-0000dead", "20200102T000000000000Z-0000beef"]
    assert store.snapshots("fashion") == [live] and assert_latest_verifies(root) == live


def test_publish_gc_command_and_every_publish_collect_old_debris(fixture_inputs, tmp_path, monkeypatch, capsys):
    root = tmp_path / "published"
    live, = publish_n(fixture_inputs, str(root), 1)
    old = time.time() - 48 * 3600
    debris = [root / "fashion" / "20200101T000000000000Z-0000dead", root / "fashion" / ".LATEST.k3j2h1"]
    debris[0].mkdir()
    (debris[0] / "shard-0000.faiss").write_bytes(b"x")
    debris[1].write_text(live)
    fresh = root / "fashion" / "20300101T000000000000Z-00000001"  # an upload in progress
    fresh.mkdir()
    (fresh / "shard-0000.faiss").write_bytes(b"x")
    staging = tmp_path / "tmp"
    (staging / "semrec-publish-abc123" / "snapshot").mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(staging))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    for path in [*debris, debris[0] / "shard-0000.faiss", staging / "semrec-publish-abc123",
                 staging / "semrec-publish-abc123" / "snapshot"]:
        os.utime(path, (old, old))
    assert semrec(["publish", "gc", "--catalog", "fashion", "--root", str(root),
                   "--params", str(fixture_inputs["params"])]) == 0  # grace: params, 24 h
    assert "deleted 3 piece(s)" in capsys.readouterr().out
    assert not any(p.exists() for p in [*debris, staging / "semrec-publish-abc123"])
    assert fresh.exists() and (root / "fashion" / ".LATEST.lock").exists() and assert_latest_verifies(str(root))
    os.utime(fresh / "shard-0000.faiss", (old, old))
    os.utime(fresh, (old, old))
    publish_n(fixture_inputs, str(root), 1)  # a publish collects debris too
    assert not fresh.exists()


def test_local_publish_makes_every_file_durable_before_latest_moves(fixture_inputs, tmp_path, monkeypatch):
    root = tmp_path / "published"
    synced: set[str] = set()
    at_swap: list[set[str]] = []
    fsync, swap = os.fsync, Store.swap_latest

    def recording_fsync(fd):
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))
        return fsync(fd)

    def recording_swap(self, *args):
        at_swap.append(set(synced))
        return swap(self, *args)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(Store, "swap_latest", recording_swap)
    live, = publish_n(fixture_inputs, str(root), 1)
    snapshot = root / "fashion" / live
    needed = {str(p) for p in snapshot.rglob("*")} | {str(snapshot), str(snapshot.parent)}
    assert needed - at_swap[0] == set()


def test_names_with_a_trailing_newline_are_refused(tmp_path):
    from serving.manifest import ManifestError

    for name in ("fashion\n", "fashion\n\n", "snap\x00"):
        with pytest.raises(ManifestError, match="not a safe name"):
            check_name(name, "catalog")
    with pytest.raises(ManifestError):
        Store(str(tmp_path)).swap_latest("fashion\n", "snap", None)
    assert not (tmp_path / "fashion\n").exists()


# --- 9. experiments never move LATEST -------------------------------------------------------------------------

def test_publish_under_dvc_exp_run_builds_and_reports_but_never_moves_latest(fixture_inputs, tmp_path,
                                                                             monkeypatch, capsys):
    root, report = str(tmp_path / "published"), tmp_path / "publish.json"
    monkeypatch.setenv("DVC_EXP_NAME", "bushy-pita")  # what `dvc exp run` sets for every stage it runs
    assert publish_tiny(fixture_inputs, root, "--report", str(report)) == 0
    assert Store(root).latest("fashion") is None and Store(root).snapshots("fashion") == []
    written = json.loads(report.read_text())
    assert written["published"] is False and "dvc exp run" in written["not_published_because"]
    assert "NOT published" in capsys.readouterr().out
    monkeypatch.delenv("DVC_EXP_NAME")
    disabled = tmp_path / "params.yaml"
    disabled.write_text(fixture_inputs["params"].read_text().replace("enabled: true", "enabled: false"))
    assert publish_tiny({**fixture_inputs, "params": disabled}, root) == 0
    assert Store(root).latest("fashion") is None
    assert publish_tiny(fixture_inputs, root, "--report", str(report)) == 0  # enabled, not an experiment
    assert json.loads(report.read_text())["published"] is True and Store(root).latest("fashion") is not None


# --- kill -9 at random points: LATEST always verifies, and gc leaves no debris --------------------------------

PUBLISHER = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from snapshot_fixture import publish_tiny
inputs = {name: Path(path) for name, path in json.loads(sys.argv[2]).items()}
print("ready", flush=True)
while True:
    publish_tiny(inputs, sys.argv[3], "--force")
"""


def test_publishers_killed_at_random_points_never_break_latest(fixture_inputs, tmp_path):
    root, staging = str(tmp_path / "published"), tmp_path / "tmp"
    staging.mkdir()
    rng = random.Random(16)
    inputs = json.dumps({name: str(path) for name, path in fixture_inputs.items()})
    env = {**os.environ, "TMPDIR": str(staging), "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(5):
        publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(TESTS), inputs, root],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        assert publisher.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 1.5))
        publisher.kill()
        publisher.wait()
        store = Store(root)
        if store.latest("fashion") is not None:
            assert_latest_verifies(root)
        for snapshot_id in store.snapshots("fashion"):  # complete means complete
            pull(store, "fashion", snapshot_id, tmp_path / "cache")
    store = Store(root)
    lifecycle.gc(store, "fashion", grace_s=0)
    lifecycle.gc_staging(grace_s=0, parent=staging)
    assert set(store.entries("fashion")) <= {*store.snapshots("fashion"), "LATEST", ".LATEST.lock"}
    assert list(staging.glob(f"{lifecycle.STAGING_PREFIX}*")) == []


# --- 10. three parties: two prunes, or a prune and a gc, racing a rollback ------------------------------------

def assert_complete_or_gone(root: str, snapshot_id: str) -> None:
    """A snapshot listed as complete verifies: no manifest stands over missing files."""
    store = Store(root)
    if snapshot_id in store.snapshots("fashion"):
        store.verify("fashion", snapshot_id)


def run_parties(parties: dict[str, object]) -> dict[str, object]:
    """Run each named callable in its own thread (named after it); returns what each raised (None: nothing)."""
    outcome: dict[str, object] = {}
    threads = [threading.Thread(target=lambda n=n, f=f: outcome.__setitem__(n, _try(f)), name=n)
               for n, f in parties.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a party is stuck"
    return outcome


def in_party(name: str) -> bool:
    return threading.current_thread().name == name


def test_two_prunes_and_a_rollback_never_leave_latest_on_a_gutted_snapshot(fixture_inputs, root, monkeypatch):
    """Both prunes read a's manifest; the rollback verifies a; the first prune deletes a; the rollback swaps;
    the second prune, seeing a live, would put the manifest back; only then does the rollback check."""
    a, _, c = publish_n(fixture_inputs, root, 3)
    both_read = threading.Barrier(3, timeout=30)  # the two prunes and the rollback
    verified, first_done, swapped, second_done = (threading.Event() for _ in range(4))
    read, verify, swap = Store.read, Store.verify, Store.swap_latest
    seen: set[str] = set()

    def reading(self, *parts):
        data = read(self, *parts)
        name = threading.current_thread().name
        if parts == ("fashion", a, MANIFEST_NAME) and name.startswith("prune") and name not in seen:
            seen.add(name)
            both_read.wait()
            assert (verified if name == "prune-1" else swapped).wait(30)  # prune-2 will find a live
        return data

    def verifying(self, catalog, snapshot_id):
        first = in_party("rollback") and not verified.is_set()
        if first:
            both_read.wait()
        try:
            return verify(self, catalog, snapshot_id)
        finally:
            if first:
                verified.set()

    def swapping(self, catalog, snapshot_id, expected):
        if not (in_party("rollback") and snapshot_id == a):
            return swap(self, catalog, snapshot_id, expected)
        assert first_done.wait(30)  # prune-1 has deleted a
        swap(self, catalog, snapshot_id, expected)
        swapped.set()
        assert second_done.wait(30)  # the rollback's own after-swap check runs only now
        return None

    def prune(done: threading.Event):
        def run():
            try:
                lifecycle.prune(Store(root), "fashion", keep=1)
            finally:
                done.set()
        return run

    with monkeypatch.context() as patched:
        patched.setattr(Store, "read", reading)
        patched.setattr(Store, "verify", verifying)
        patched.setattr(Store, "swap_latest", swapping)
        outcome = run_parties({"prune-1": prune(first_done), "prune-2": prune(second_done),
                               "rollback": lambda: lifecycle.rollback(Store(root), "fashion", a)})
    assert outcome["prune-1"] is None and outcome["prune-2"] is None, outcome
    live = assert_latest_verifies(root)
    assert (live, type(outcome["rollback"])) in {(a, type(None)), (c, PointerConflict)}, (live, outcome)
    assert_complete_or_gone(root, a)


def test_a_prune_a_gc_and_a_rollback_never_leave_latest_on_a_gutted_snapshot(fixture_inputs, root, monkeypatch):
    """The prune hides a; another publisher's gc finds a without a manifest (its files are old) and deletes it;
    the rollback, which verified a before, swaps; the prune finds a live and would put its manifest back."""
    a, _, c = publish_n(fixture_inputs, root, 3)
    store = Store(root)
    old = time.time() - 48 * 3600
    if store.is_local:  # a's files were written two days ago
        for path in Path(store.path("fashion", a)).rglob("*"):
            os.utime(path, (old, old))
    gc_now = time.time() if store.is_local else time.time() + 48 * 3600  # S3: no way to age an object
    verified, swapped, pruned = threading.Event(), threading.Event(), threading.Event()
    read, verify, swap, delete = Store.read, Store.verify, Store.swap_latest, Store.delete
    collected: list[list[str]] = []

    def reading(self, *parts):
        if in_party("prune") and parts == ("fashion", a, MANIFEST_NAME):
            assert verified.wait(30)
        return read(self, *parts)

    def verifying(self, *args):
        try:
            return verify(self, *args)
        finally:
            verified.set()

    def deleting(self, *parts):
        delete(self, *parts)
        if in_party("prune") and parts == ("fashion", a, MANIFEST_NAME) and not collected:  # a is hidden now
            collected.append(lifecycle.gc(Store(root), "fashion", grace_s=24 * 3600, now=gc_now))
            assert swapped.wait(30)

    def swapping(self, catalog, snapshot_id, expected):
        if not (in_party("rollback") and snapshot_id == a):
            return swap(self, catalog, snapshot_id, expected)
        while not collected:  # the gc has run
            assert not pruned.wait(0.01), "the prune ended before the gc ran"
        swap(self, catalog, snapshot_id, expected)
        swapped.set()
        assert pruned.wait(30)  # the rollback's own after-swap check runs only now
        return None

    def prune():
        try:
            lifecycle.prune(Store(root), "fashion", keep=1)
        finally:
            pruned.set()

    with monkeypatch.context() as patched:
        patched.setattr(Store, "read", reading)
        patched.setattr(Store, "verify", verifying)
        patched.setattr(Store, "delete", deleting)
        patched.setattr(Store, "swap_latest", swapping)
        outcome = run_parties({"prune": prune, "rollback": lambda: lifecycle.rollback(Store(root), "fashion", a)})
    assert outcome["prune"] is None, outcome
    live = assert_latest_verifies(root)
    assert (live, type(outcome["rollback"])) in {(a, type(None)), (c, PointerConflict)}, (live, outcome)
    assert_complete_or_gone(root, a)
    if store.is_local:  # gc never deletes a snapshot whose manifest is only hidden by a prune at work
        assert collected == [[]] and live == a


def test_publish_force_replaces_a_live_snapshot_that_lost_its_files(fixture_inputs, root, tmp_path):
    _, gutted = publish_n(fixture_inputs, root, 2)
    store = Store(root)
    for name in store.file_sizes("fashion", gutted):  # what B1 left: LATEST on a folder holding only its manifest
        if name != MANIFEST_NAME:
            store.delete("fashion", gutted, name)
    report = tmp_path / "publish.json"
    assert publish_tiny(fixture_inputs, root, "--force", "--report", str(report)) == 0  # was exit 3
    assert json.loads(report.read_text())["snapshot_id"] == assert_latest_verifies(root)
    assert publish_tiny(fixture_inputs, root) == 0  # the gate compares with the new live snapshot again


def test_a_gate_that_cannot_read_the_live_metrics_refuses_and_names_force(fixture_inputs, tmp_path, capsys):
    root = str(tmp_path / "published")
    _, gutted = publish_n(fixture_inputs, root, 2)
    Store(root).delete("fashion", gutted, "metrics.json")
    assert publish_tiny(fixture_inputs, root) == 1
    err = capsys.readouterr().err
    assert "metrics.json" in err and "--force" in err
    assert Store(root).latest("fashion").snapshot_id == gutted


# --- 11. deletes racing deletes: every retry tolerates what another deleter took first -----------------------

def test_a_prune_whose_deletes_keep_losing_entries_to_another_deleter_finishes(fixture_inputs, root, monkeypatch):
    ids = publish_n(fixture_inputs, root, 3)
    store = Store(root)
    rm, raced = store.fs.rm, []

    def racing_rm(path, recursive=False, **kwargs):
        """Another pruner deletes a file under our feet (the one we delete, or one in the folder we delete),
        then ours trips over it: 5 times in a row."""
        left = sorted(store.fs.find(path))
        if len(raced) < 5 and left:
            raced.append(path)
            rm(left[-1])
            raise FileNotFoundError(left[-1])
        return rm(path, recursive=recursive, **kwargs)

    monkeypatch.setattr(store.fs, "rm", racing_rm)
    assert lifecycle.prune(store, "fashion", keep=1) == ids[:2]  # was FileNotFoundError from the 4th try
    assert len(raced) == 5
    assert Store(root).snapshots("fashion") == ids[2:] and assert_latest_verifies(root) == ids[2]
    assert not any(Store(root).exists("fashion", i) for i in ids[:2])


# --- 12. gc's grace period must be a number of hours ----------------------------------------------------------

@pytest.mark.parametrize("grace", ["nan", "inf", "-1", "soon"])
def test_gc_refuses_a_grace_period_that_is_not_a_finite_number_of_hours(fixture_inputs, tmp_path, capsys, grace):
    root = tmp_path / "published"
    publish_n(fixture_inputs, str(root), 1)
    upload = root / "fashion" / "20300101T000000000000Z-00000001"  # an upload in progress, a moment old
    upload.mkdir()
    (upload / "shard-0000.faiss").write_bytes(b"x")
    with pytest.raises(SystemExit) as done:
        semrec(["publish", "gc", "--catalog", "fashion", "--root", str(root), "--params",
                str(fixture_inputs["params"]), "--grace-hours", grace])
    assert done.value.code == 2 and "--grace-hours" in capsys.readouterr().err
    assert upload.exists()
    for grace_s in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="grace"):
            lifecycle.gc(Store(str(root)), "fashion", grace_s=grace_s)
    assert upload.exists()


def test_gc_removes_the_mark_of_a_prune_killed_after_putting_a_manifest_back(fixture_inputs, root):
    a, b = publish_n(fixture_inputs, root, 2)
    store = Store(root)
    store.put_bytes(b"", "fashion", a, f"{lifecycle.PRUNE_MARK}0123abcd")  # its prune died before removing it
    with pytest.raises(PointerConflict, match="a prune is deleting it"):
        lifecycle.rollback(store, "fashion", a)  # the mark stands for a prune at work: the rollback gives way
    assert assert_latest_verifies(root) == b
    assert lifecycle.gc(store, "fashion", grace_s=3600) == []  # a live prune's mark is younger than the grace
    assert lifecycle.gc(store, "fashion", grace_s=3600, now=time.time() + 7200) == [
        f"{a}/{lifecycle.PRUNE_MARK}0123abcd"]
    lifecycle.rollback(store, "fashion", a)
    assert assert_latest_verifies(root) == a
