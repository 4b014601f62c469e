"""POST /ask and `semrec ask` over the tiny snapshot published with an intent/ folder."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from serving.ask_cli import NO_INTENT, main
from serving.http import create_app
from serving.limits import MAX_K, MAX_TEXT_CHARS
from serving.reader import Reader


@pytest.fixture(scope="module")
def client(ask_root: str, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return TestClient(create_app(Reader.open(ask_root, "movies", cache_dir=tmp_path_factory.mktemp("cache"))))


def test_ask_answers_with_intent_entities_routed_items_and_explanations(client):
    body = client.post("/ask", json={"text": "something by Carla", "k": 3}).json()
    assert body["snapshot_id"] == client.get("/snapshot").json()["snapshot_id"]
    assert body["intent"] == "recommend" and body["request"]["people"] == ["Carla"]
    assert {item["item_id"] for item in body["items"]} == {"i05", "i06", "i11"}  # Carla's, routed first
    assert all(item["explanation"].endswith("directed by Carla.") for item in body["items"])
    like = client.post("/ask", json={"text": "something like Red summer dress"}).json()
    assert like["request"]["titles"] == ["Red summer dress"] and len(like["items"]) == 10  # k by default
    assert "i01" not in [item["item_id"] for item in like["items"]]  # not the anchor itself
    assert like["items"][0]["explanation"].startswith("If you enjoyed Red summer dress, you might like")
    chat = client.post("/ask", json={"text": "hello!"}).json()
    assert (chat["intent"], chat["items"]) == ("chitchat", []) and chat["message"]
    assert "/ask" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("body, complaint", [
    ({"text": "hi", "k": 0}, "k"),
    ({"text": "hi", "k": MAX_K + 1}, "k"),
    ({"text": ""}, "text"),
    ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text"),
    ({"k": 3}, "text"),
    ({"text": "hi", "mode": "dense"}, "mode"),
])
def test_bad_ask_input_is_a_400_naming_the_field(client, body, complaint):
    response = client.post("/ask", json=body)
    assert response.status_code == 400
    assert complaint in str(response.json()["detail"])


def test_a_catalog_without_intent_answers_404(published_root, tmp_path):
    client = TestClient(create_app(Reader.open(published_root, "fashion", cache_dir=tmp_path / "cache")))
    response = client.post("/ask", json={"text": "something like Red summer dress"})
    assert response.status_code == 404 and "ships no intent/ folder" in response.json()["detail"]


def test_ask_cli_prints_explanations_and_the_http_body_as_json(ask_root, client, tmp_path, capsys):
    common = ["--root", ask_root, "--catalog", "movies", "--cache", str(tmp_path / "cache")]
    assert main(["something by Carla", "--k", "2", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "# intent: recommend | people: Carla"
    assert "[i" in lines[2] and lines[3].strip().endswith("directed by Carla.") and len(lines) == 6
    assert main(["something by Carla", "--k", "2", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out) == client.post("/ask", json={"text": "something by Carla", "k": 2}).json()


def test_ask_cli_refuses_bad_input_and_a_snapshot_without_intent(published_root, tmp_path, capsys):
    common = ["--root", published_root, "--catalog", "fashion", "--cache", str(tmp_path / "cache")]
    for bad in (["hi", "--k", "0"], ["hi", "--k", str(MAX_K + 1)], ["x" * (MAX_TEXT_CHARS + 1)], ["  "]):
        with pytest.raises(SystemExit) as exited:
            main(bad + common)
        assert exited.value.code == 2
    assert main(["something like Red summer dress", *common]) == NO_INTENT
    assert "ships no intent/ folder" in capsys.readouterr().err


def test_curl_d_without_a_json_content_type_is_read_as_json(client):
    form = {"content-type": "application/x-www-form-urlencoded"}  # what `curl -d '{...}'` declares
    answered = client.post("/ask", content='{"text": "something by Carla", "k": 1}', headers=form)
    assert answered.status_code == 200 and answered.json()["request"]["people"] == ["Carla"]
    assert client.post("/search", content='{"text": "red dress", "k": 1}', headers=form).status_code == 200
    assert client.post("/ask", content="text=hi", headers=form).status_code == 400  # not JSON: named, not a crash
