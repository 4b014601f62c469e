"""publish stage: snapshots on a local folder and on S3 (moto): gate, concurrency, rollback, retention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from snapshot_fixture import publish_concurrently, publish_tiny

from pipelines import lifecycle
from pipelines.cli import main as semrec
from serving.cache import pull
from serving.fusion import Fusion
from serving.manifest import MANIFEST_NAME, Manifest
from serving.reader import Reader
from serving.store import Store


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "published") if request.param == "local" else request.getfixturevalue("s3_root")


def test_publish_writes_a_verified_snapshot_that_the_reader_serves(fixture_inputs, root, tmp_path):
    report = tmp_path / "publish.json"
    assert publish_tiny(fixture_inputs, root, "--report", str(report)) == 0
    published = json.loads(report.read_text())
    store = Store(root)
    assert store.latest("fashion").snapshot_id == published["snapshot_id"]
    manifest = Manifest.from_json(store.read("fashion", published["snapshot_id"], MANIFEST_NAME))
    paths = {entry.path for entry in manifest.files}
    assert {"index/index.json", "encoder/model_int8.onnx", "encoder/tokenizer.json", "metrics.json",
            "bm25/params.index.json"} <= paths
    assert (manifest.dim, manifest.metric, manifest.ef_search) == (21, "inner_product", 16)
    # the product codes are invisible to the encoder, so the fusion stage chose BM25 fusion on the validation
    # pairs; the manifest carries that choice and its validation figures
    chosen = json.loads(Path(fixture_inputs["fusion"]).read_text())
    assert manifest.fusion == Fusion(**chosen["fusion"]) == Fusion("hybrid", 0.5) and published["fusion"] == chosen["fusion"]
    assert manifest.extra["fusion"]["validation"] == {"dense": 0.5, "rrf@60": 0.5, "hybrid@0.5": 1.0}
    reader = Reader.open(root, "fashion", cache_dir=tmp_path / "cache")
    assert reader.manifest.snapshot_id == published["snapshot_id"]
    arrays = list((tmp_path / "cache").rglob("*.npy"))
    assert len(arrays) >= 3 and all(np.load(a, allow_pickle=False) is not None for a in arrays)  # no pickle
    assert [hit.item_id for hit in reader.search("red dress", k=2)] == ["i01", "i02"]


def test_gate_refuses_a_worse_snapshot_unless_forced(fixture_inputs, tmp_path, capsys):
    root = str(tmp_path / "published")
    assert publish_tiny(fixture_inputs, root, recall=0.50) == 0
    live = Store(root).latest("fashion").snapshot_id
    assert publish_tiny(fixture_inputs, root, recall=0.47) == 1  # 0.03 below, tolerance 0.02
    assert "below the live snapshot" in capsys.readouterr().err
    assert Store(root).latest("fashion").snapshot_id == live
    assert Store(root).snapshots("fashion") == [live]  # nothing uploaded
    assert publish_tiny(fixture_inputs, root, recall=0.49) == 0  # within tolerance
    assert publish_tiny(fixture_inputs, root, "--force", recall=0.10) == 0
    assert len(Store(root).snapshots("fashion")) == 3


def test_two_concurrent_publishes_have_one_winner_and_two_complete_snapshots(fixture_inputs, root, tmp_path, monkeypatch):
    codes = publish_concurrently(fixture_inputs, root, (0.5, 0.6), monkeypatch)
    assert sorted(codes) == [0, 1]
    store = Store(root)
    snapshots = store.snapshots("fashion")
    assert len(snapshots) == 2 and store.latest("fashion").snapshot_id in snapshots
    for snapshot_id in snapshots:  # the loser's snapshot is complete too: every file verifies
        pull(store, "fashion", snapshot_id, tmp_path / "cache")


def test_rollback_moves_latest_back_and_refuses_unknown_ids(fixture_inputs, root, tmp_path, capsys):
    assert publish_tiny(fixture_inputs, root, recall=0.5) == 0
    first = Store(root).latest("fashion").snapshot_id
    assert publish_tiny(fixture_inputs, root, recall=0.6) == 0
    second = Store(root).latest("fashion").snapshot_id
    assert second != first
    base = ["--catalog", "fashion", "--root", root, "--params", str(fixture_inputs["params"])]
    assert semrec(["publish", "rollback", "--to", first, *base]) == 0
    assert Store(root).latest("fashion").snapshot_id == first
    assert semrec(["publish", "rollback", "--to", "20990101T000000000000Z-ffffffff", *base]) == 3  # not found
    assert "no complete snapshot to roll back to" in capsys.readouterr().err
    store = Store(root)
    store.fs.rm(store.path("fashion", second, "bm25", "vocab.index.json"))
    assert semrec(["publish", "rollback", "--to", second, *base]) == 4  # incomplete: verification failed
    assert "bm25/vocab.index.json is missing" in capsys.readouterr().err
    assert Store(root).latest("fashion").snapshot_id == first


def test_retention_keeps_the_newest_and_never_the_live_one(fixture_inputs, tmp_path):
    root = str(tmp_path / "published")
    ids = []
    for _ in range(4):  # params keep: 3
        assert publish_tiny(fixture_inputs, root, recall=0.5) == 0
        ids.append(Store(root).latest("fashion").snapshot_id)
    store = Store(root)
    assert store.snapshots("fashion") == ids[1:]
    assert lifecycle.rollback(store, "fashion", ids[1]).snapshot_id == ids[3]
    assert lifecycle.prune(store, "fashion", keep=1) == [ids[2]]  # ids[1] is older but live
    assert store.snapshots("fashion") == [ids[1], ids[3]]
