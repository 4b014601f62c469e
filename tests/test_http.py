"""serving.http: the FastAPI app over a Reader of the tiny published catalog."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from snapshot_fixture import publish_tiny

from serving.filters import MAX_CATEGORIES
from serving.http import create_app
from serving.http_models import MAX_BODY_BYTES, MAX_K, MAX_TEXT_CHARS
from serving.manifest import ManifestError
from serving.reader import Reader
from serving.store import Store


@pytest.fixture(scope="module")
def client(published_root: str, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    reader = Reader.open(published_root, "fashion", cache_dir=tmp_path_factory.mktemp("cache"))
    return TestClient(create_app(reader))


def test_search_similar_health_and_snapshot(client):
    snapshot = client.get("/snapshot").json()
    assert snapshot["catalog"] == "fashion" and snapshot["items"] == 12
    assert snapshot["fusion"] == {"method": "hybrid", "bm25_weight": 0.5, "rrf_k": 60, "link_weight": 0.0,
                                  "prior_weight": 0.0}
    assert client.get("/healthz").json() == {"status": "ok", "snapshot_id": snapshot["snapshot_id"],
                                             "failed_refreshes": 0, "last_error": None}
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
    ({"text": "red", "filters": {"colour": "red"}}, "filters/colour"),
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


# --- hostile input: every bound holds on every route, and answers 400 (413 for a big body), never 500 ---

@pytest.mark.parametrize("filters, complaint", [
    ({"categories": ["Dresses"] * (MAX_CATEGORIES + 1)}, "filters/categories"),  # ~0.5 ms each per 1M items
    ({"categories": ["x" * 201]}, "filters/categories/0"),
    ({"year_min": 10 ** 400}, "filters/year_min"),  # was an OverflowError: 500
    ({"year_max": -1}, "filters/year_max"),
    ({"price_min": 1e300}, "filters/price_min"),
    ({"year_min": 2021, "year_max": 2020}, "above"),
])
def test_filters_are_bounded(client, filters, complaint):
    response = client.post("/search", json={"text": "red dress", "filters": filters})
    assert response.status_code == 400
    assert complaint in str(response.json()["detail"])


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(client, literal):
    # Python's json (and starlette's) accept these literals; price_min NaN used to match nothing: a silent 200
    body = f'{{"text": "red dress", "filters": {{"price_min": {literal}}}}}'
    response = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "filters/price_min" in str(response.json()["detail"])


def test_bodies_over_the_limit_are_refused_before_parsing(client):
    big = b'{"text": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert client.post("/search", content=big, headers={"content-type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"text": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    assert client.post("/search", content=chunks(), headers={"content-type": "application/json"}).status_code == 413
    assert client.post("/search", json={"text": "red dress"}).status_code == 200  # the app still serves


def test_similar_takes_the_same_filters_and_bounds(client):
    hits = client.get("/items/i01/similar", params={"k": 1, "creator": "Bruno"}).json()["items"]
    assert [hit["item_id"] for hit in hits] == ["i02"]
    hits = client.get("/items/i01/similar", params=[("k", 5), ("categories", "Knits"), ("categories", "Tops")]).json()
    assert {hit["item_id"] for hit in hits["items"]} == {"i04", "i07", "i09"}
    for params in ({"year_min": 10 ** 400}, {"price_max": "nan"}, {"colour": "red"},
                   {"categories": ["x"] * (MAX_CATEGORIES + 1)}):
        assert client.get("/items/i01/similar", params=params).status_code == 400, params


def test_openapi_documents_400_limits_and_typed_models(client):
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            assert "400" in operation["responses"], (method, path)
    models = schema["components"]["schemas"]
    assert {"FilterModel", "SearchBody", "HealthBody", "SnapshotInfo", "Results", "Problem"} <= set(models)
    assert "HTTPValidationError" not in models
    categories = models["FilterModel"]["properties"]["categories"]["anyOf"][0]
    assert categories["maxItems"] == MAX_CATEGORIES and categories["items"]["maxLength"] == 200
    year = models["FilterModel"]["properties"]["year_min"]["anyOf"][0]
    assert (year["minimum"], year["maximum"]) == (0, 9999)
    assert models["SearchBody"]["properties"]["text"]["maxLength"] == MAX_TEXT_CHARS
    similar = {p["name"] for p in schema["paths"]["/items/{item_id}/similar"]["get"]["parameters"]}
    assert {"k", "creator", "categories", "year_min", "year_max", "price_min", "price_max"} <= similar
    assert schema["paths"]["/healthz"]["get"]["responses"]["503"]


def test_healthz_turns_503_after_failed_refreshes_in_a_row_naming_the_error(fixture_inputs, tmp_path):
    root = str(tmp_path / "published")
    assert publish_tiny(fixture_inputs, root, recall=0.5) == 0
    reader = Reader.open(root, "fashion", cache_dir=tmp_path / "cache")
    client = TestClient(create_app(reader, unhealthy_after=2))
    assert publish_tiny(fixture_inputs, root, recall=0.6) == 0
    store = Store(root)
    bad = store.latest("fashion").snapshot_id
    store.put_bytes(b"{}", "fashion", bad, "encoder", "encoder.json")  # tampered: refused on every refresh
    for failures in (1, 2):
        with pytest.raises(ManifestError):
            reader.refresh()
        response = client.get("/healthz")
        assert response.json()["failed_refreshes"] == failures
        assert response.status_code == (503 if failures >= 2 else 200)
    assert response.json()["status"] == "failing" and "encoder/encoder.json" in response.json()["last_error"]
    assert client.post("/search", json={"text": "red dress", "k": 1}).status_code == 200  # still serving
    store.swap_latest("fashion", reader.manifest.snapshot_id, store.latest("fashion"))  # LATEST back
    assert reader.refresh() is False
    assert client.get("/healthz").json() == {"status": "ok", "snapshot_id": reader.manifest.snapshot_id,
                                             "failed_refreshes": 0, "last_error": None}


@pytest.mark.parametrize("path, body, complaint", [
    ("/search", {"text": "red", "k": True}, "k"),
    ("/search", {"text": "red", "k": "3"}, "k"),
    ("/search", {"text": "red", "k": 3.0}, "k"),
    ("/search", {"text": "red", "filters": {"year_min": True}}, "filters/year_min"),
    ("/search", {"text": "red", "filters": {"year_min": "2000"}}, "filters/year_min"),
    ("/search", {"text": "red", "filters": {"price_max": False}}, "filters/price_max"),
    ("/search", {"text": "red", "filters": {"price_max": "100"}}, "filters/price_max"),
    ("/search", {"text": "red", "filters": {"creator": 7}}, "filters/creator"),
    ("/ask", {"text": "red", "k": True}, "k"),
    ("/ask", {"text": "red", "k": "3"}, "k"),
])
def test_json_numbers_are_taken_strictly_as_the_library_takes_them(client, path, body, complaint):
    response = client.post(path, json=body)
    assert response.status_code == 400 and complaint in str(response.json()["detail"]), response.text


def test_strict_bodies_still_take_an_integer_price_and_query_strings_still_take_numbers(client):
    assert client.post("/search", json={"text": "red", "filters": {"price_max": 100}}).status_code == 200
    query = {"k": "2", "year_min": "2000", "price_max": "150.5"}
    assert client.get("/items/i01/similar", params=query).status_code == 200
