"""serving.http: the FastAPI app over a Reader of the tiny published catalog."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.http import MAX_K, MAX_TEXT_CHARS, create_app
from serving.reader import Reader


@pytest.fixture(scope="module")
def client(published_root: str, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    reader = Reader.open(published_root, "fashion", cache_dir=tmp_path_factory.mktemp("cache"))
    return TestClient(create_app(reader))


def test_search_similar_health_and_snapshot(client):
    snapshot = client.get("/snapshot").json()
    assert snapshot["catalog"] == "fashion" and snapshot["items"] == 12
    assert snapshot["fusion"] == {"method": "hybrid", "bm25_weight": 0.5, "rrf_k": 60}
    assert client.get("/healthz").json() == {"status": "ok", "snapshot_id": snapshot["snapshot_id"]}
    body = client.post("/search", json={"text": "red dress", "k": 3, "filters": {"creator": "Alba"}}).json()
    assert body["snapshot_id"] == snapshot["snapshot_id"]
    assert [item["item_id"] for item in body["items"]] == ["i01", "i03", "i04"]
    assert body["items"][0]["attributes"] == {"material": "cloth"}
    for mode in ({}, {"mode": "hybrid"}):  # no mode: the snapshot's fusion (hybrid, weight 0.5)
        fused = client.post("/search", json={"text": "linen sku77", "k": 1, **mode}).json()
        assert [item["item_id"] for item in fused["items"]] == ["i08"]
    dense = client.post("/search", json={"text": "linen sku77", "k": 1, "mode": "dense"}).json()
    assert [item["item_id"] for item in dense["items"]] == ["i07"]
    similar = client.get("/items/i01/similar", params={"k": 2}).json()
    assert {item["item_id"] for item in similar["items"]} == {"i03", "i12"}
    assert client.get("/items/nope/similar").status_code == 404
    assert "/search" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("body, complaint", [
    ({"text": "red", "k": 0}, "k"),
    ({"text": "red", "k": MAX_K + 1}, "k"),
    ({"text": ""}, "text"),
    ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text"),
    ({"k": 3}, "text"),
    ({"text": "red", "mode": "sparse"}, "mode"),
    ({"text": "red", "filters": {"colour": "red"}}, "unknown filter field(s) ['colour']"),
    ({"text": "red", "filters": {"year_min": "new"}}, "year_min"),
    ({"text": "red", "limit": 3}, "limit"),
])
def test_bad_input_is_a_400_naming_the_problem(client, body, complaint):
    response = client.post("/search", json=body)
    assert response.status_code == 400
    assert complaint in str(response.json()["detail"])


def test_similar_rejects_k_out_of_bounds(client):
    assert client.get("/items/i01/similar", params={"k": 0}).status_code == 400
    assert client.get("/items/i01/similar", params={"k": MAX_K + 1}).status_code == 400
