"""semrec demo: PyTorch FP32 + exact search (the real base MiniLM) beside the tiny snapshot on the dashboard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sentence_transformers import SentenceTransformer

from pipelines.demo import PytorchSystem, demo_systems
from serving.http import create_app
from serving.reader import Reader

BASE = Path(__file__).resolve().parents[1] / "models" / "base" / "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def model() -> SentenceTransformer:
    return SentenceTransformer(str(BASE), device="cpu")


@pytest.fixture(scope="module")
def reader(published_root: str, tmp_path_factory: pytest.TempPathFactory) -> Reader:
    return Reader.open(published_root, "fashion", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def documents(fixture_inputs: dict) -> tuple[list[str], list[str]]:
    table = pq.read_table(fixture_inputs["documents"])
    return table.column("item_id").to_pylist(), table.column("document").to_pylist()


def test_pytorch_side_is_exact_search_over_fp32_embeddings(model, reader, documents):
    ids, texts = documents
    system = PytorchSystem(model, reader, ids, texts)
    vectors = model.encode(texts, normalize_embeddings=True)
    query = model.encode(["a warm winter coat"], normalize_embeddings=True)[0]
    exact = [ids[i] for i in np.argsort(-(vectors @ query), kind="stable")[:4]]
    hits = system.search("a warm winter coat", 4)
    assert [h.item_id for h in hits] == exact
    assert hits[0].title == reader.snapshot.item(exact[0]).title  # metadata from the snapshot
    assert np.allclose([h.score for h in hits], np.sort(vectors @ query)[::-1][:4], atol=1e-5)
    similar = system.more_like("i01", 20)
    assert len(similar) == len(ids) - 1 and "i01" not in [h.item_id for h in similar]
    with pytest.raises(KeyError):
        system.more_like("nope", 3)


def test_documents_the_snapshot_lacks_are_refused(model, reader, documents):
    ids, texts = documents
    with pytest.raises(ValueError, match="lacks"):
        PytorchSystem(model, reader, [*ids, "i99"], [*texts, "a ghost"])


def test_the_page_opens_on_snapshot_dense_vs_pytorch(model, reader, documents):
    client = TestClient(create_app(reader, demo_systems(reader, PytorchSystem(model, reader, *documents))))
    systems = [s["id"] for s in client.get("/dashboard/systems").json()["systems"]]
    assert systems[:2] == ["dense", "pytorch"] and {"shipped", "hybrid"} <= set(systems)
    body = client.post("/dashboard/search", json={"system": "pytorch", "text": "red dress", "k": 3}).json()
    assert body["label"] == "PyTorch FP32 + exact search" and len(body["items"]) == 3 and body["server_ms"] > 0
