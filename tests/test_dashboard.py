"""The dashboard's page and endpoints (serving.dashboard) over the tiny snapshots; the browser test drives them."""

from __future__ import annotations

import argparse

import pytest
from fastapi.testclient import TestClient

from serving.dashboard import SnapshotSystem, add_compare_arguments, compared, snapshot_systems
from serving.http import create_app
from serving.limits import MAX_K
from serving.arguments import add_reader_arguments
from serving.reader import Reader
from serving.snapshot import MODES


@pytest.fixture(scope="module")
def reader(published_root: str, tmp_path_factory: pytest.TempPathFactory) -> Reader:
    return Reader.open(published_root, "fashion", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def client(reader: Reader) -> TestClient:
    return TestClient(create_app(reader))


def test_the_page_and_its_files_are_served_same_origin_only(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    html = page.text
    assert 'src="/static/dashboard.js"' in html and 'href="/static/dashboard.css"' in html
    assert "http://" not in html and "https://" not in html  # no CDN
    for name in ("dashboard.js", "dashboard.css"):
        served = client.get(f"/static/{name}")
        assert served.status_code == 200 and "http://" not in served.text and "https://" not in served.text


def test_systems_are_the_shipped_default_then_each_mode_the_snapshot_offers(client, reader):
    listed = client.get("/dashboard/systems").json()
    assert (listed["catalog"], listed["items"], listed["ask"], listed["max_k"]) == ("fashion", 12, False, MAX_K)
    assert listed["snapshot_id"] == reader.manifest.snapshot_id
    # the fixture's snapshot ships a fused default (hybrid): dense alone is the first system beside it
    assert [s["id"] for s in listed["systems"]] == ["shipped", "dense", "hybrid", "rrf"]
    assert all(reader.manifest.snapshot_id in s["label"] for s in listed["systems"])


def test_search_and_similar_answer_per_system_with_the_time_spent(client, reader):
    for mode in MODES:
        body = client.post("/dashboard/search", json={"system": mode, "text": "linen sku77", "k": 2}).json()
        assert body["system"] == mode and body["server_ms"] > 0
        assert [h["item_id"] for h in body["items"]] == [h.item_id for h in reader.search("linen sku77", 2, mode=mode)]
    shipped = client.post("/dashboard/search", json={"system": "shipped", "text": "red dress", "k": 3}).json()
    assert [h["item_id"] for h in shipped["items"]] == [h.item_id for h in reader.search("red dress", 3)]
    similar = client.post("/dashboard/similar", json={"system": "hybrid", "item_id": "i01", "k": 2}).json()
    assert {h["item_id"] for h in similar["items"]} == {"i03", "i12"}


@pytest.mark.parametrize("path, body, status", [
    ("/dashboard/search", {"system": "nope", "text": "red"}, 404),
    ("/dashboard/search", {"system": "dense", "text": ""}, 400),
    ("/dashboard/search", {"system": "dense", "text": "red", "k": MAX_K + 1}, 400),
    ("/dashboard/search", {"system": "dense", "text": "red", "mode": "dense"}, 400),
    ("/dashboard/similar", {"system": "dense", "item_id": "nope"}, 404),
    ("/dashboard/similar", {"system": "dense", "item_id": "i01", "k": 0}, 400),
])
def test_bad_dashboard_requests_are_refused(client, path, body, status):
    assert client.post(path, json=body).status_code == status


def test_a_second_snapshot_joins_as_the_candidate(fixture_inputs, tmp_path):
    from snapshot_fixture import publish_tiny

    root = str(tmp_path / "published")
    assert publish_tiny(fixture_inputs, root, recall=0.5) == 0
    old = Reader.open(root, "fashion", cache_dir=tmp_path / "cache").manifest.snapshot_id
    assert publish_tiny(fixture_inputs, root, recall=0.6) == 0
    parser = argparse.ArgumentParser()
    add_reader_arguments(parser)
    add_compare_arguments(parser)
    args = parser.parse_args(["--root", root, "--catalog", "fashion", "--cache", str(tmp_path / "cache"),
                              "--compare-version", old])
    live = Reader.open(root, "fashion", cache_dir=tmp_path / "cache")
    systems = snapshot_systems(live, compared(args))
    assert list(systems)[:2] == ["shipped", "candidate"]  # the page starts with these two side by side
    candidate = systems["candidate"]
    assert isinstance(candidate, SnapshotSystem) and candidate.reader.manifest.snapshot_id == old != live.manifest.snapshot_id
    listed = TestClient(create_app(live, systems)).get("/dashboard/systems").json()["systems"]
    assert old in listed[1]["label"]
    assert compared(parser.parse_args(["--root", root, "--catalog", "fashion"])) == {}
