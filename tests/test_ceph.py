"""Publish -> reader against a real Ceph radosgw (started by .ci/run; see tests/conftest.py).

In CI these FAIL when the server is missing; locally without SEMREC_CEPH_ENDPOINT they are deselected.
"""

from __future__ import annotations

import pytest
from snapshot_fixture import publish_concurrently, publish_tiny

from serving.cache import pull
from serving.manifest import ManifestError
from serving.reader import Reader
from serving.store import Store

pytestmark = pytest.mark.ceph


def test_publish_then_serve_from_ceph_and_refuse_a_tampered_snapshot(fixture_inputs, ceph_root, tmp_path):
    assert publish_tiny(fixture_inputs, ceph_root, recall=0.5) == 0
    reader = Reader.open(ceph_root, "fashion", cache_dir=tmp_path / "cache")
    old = reader.manifest.snapshot_id
    assert [hit.item_id for hit in reader.search("linen sku77", k=1, mode="hybrid")] == ["i08"]
    assert publish_tiny(fixture_inputs, ceph_root, recall=0.6) == 0  # LATEST moves by If-Match on Ceph
    store = Store(ceph_root)
    new = store.latest("fashion").snapshot_id
    store.fs.pipe_file(store.path("fashion", new, "encoder", "tokenizer.json"), b"{}")  # tamper
    with pytest.raises(ManifestError, match="encoder/tokenizer.json"):
        reader.refresh()
    assert reader.manifest.snapshot_id == old
    assert [hit.item_id for hit in reader.search("red dress", k=2)] == ["i01", "i02"]


def test_concurrent_publishes_to_ceph_have_exactly_one_winner(fixture_inputs, ceph_root, tmp_path, monkeypatch):
    assert publish_tiny(fixture_inputs, ceph_root, recall=0.5) == 0  # the swaps below replace (If-Match)
    codes = publish_concurrently(fixture_inputs, ceph_root, (0.6, 0.7), monkeypatch)
    assert sorted(codes) == [0, 1]
    store = Store(ceph_root)
    assert len(store.snapshots("fashion")) == 3
    for snapshot_id in store.snapshots("fashion"):
        pull(store, "fashion", snapshot_id, tmp_path / "cache")
