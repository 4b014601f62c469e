"""BEIR layout: the loader, and `semrec evaluate --beir` end to end on a tiny hand-checkable dataset.

The encoder is the real tiny ONNX graph of tests/snapshot_fixture.py (one axis per known word,
normalised sum), so the dense rankings below are worked out by hand in the comments.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from snapshot_fixture import write_encoder

from pipelines import evaluate
from pipelines.evaluation.beir import load_beir

TINY = Path(__file__).parent / "fixtures" / "beir" / "tiny"
BASE = Path(__file__).resolve().parents[1] / "models" / "base" / "all-MiniLM-L6-v2"
PARAMS = {"evaluate": {
    "metrics": ["recall@1", "recall@10", "mrr@10", "ndcg@10"], "curve_ks": [1, 2, 5], "max_queries": 100,
    "seed": 1, "bootstrap": {"resamples": 200, "confidence": 0.95, "seed": 1},
    "batch_size": 4, "latency_queries": 3, "warn_ci_half_width": 0.1,
    "beir": {"shards": 2, "workers": 1, "m": 8, "ef_construction": 40, "recall_target": 0.98,
             "ef_search_grid": [4, 16], "tune_k": 2}}}


def test_loader_keeps_judged_queries_and_joins_titles():
    data = load_beir(TINY)
    assert data.query_ids == ["q1", "q2", "q3"]  # q4 has only a 0 grade, q5 no judgement
    assert data.qrels[0] == {"d1": 2.0, "d8": 1.0}
    assert data.documents[0] == "Red summer dress. light red dress for summer"
    assert data.documents[7] == "Red evening dress: red evening party dress"  # untitled: text alone


@pytest.mark.parametrize("file, line, expected", [
    ("corpus.jsonl", '{"_id": "d9"}\n', r"corpus.jsonl:9: field\(s\) \['text'\]"),
    ("corpus.jsonl", "{not json\n", r"corpus.jsonl:9: not JSON"),
    ("qrels/test.tsv", "q1\tnope\t1\n", r"unknown corpus ids \['nope'\]"),
    ("qrels/test.tsv", "q1\td1\n", r"test.tsv:8: expected 3"),
])
def test_malformed_files_are_named(tmp_path, file, line, expected):
    shutil.copytree(TINY, tmp_path / "ds")
    with (tmp_path / "ds" / file).open("a", encoding="utf-8") as f:
        f.write(line)
    with pytest.raises(ValueError, match=expected):
        load_beir(tmp_path / "ds")


def run_beir(tmp_path: Path, *encoder_args: str) -> dict:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    assert evaluate.main(["--beir", str(TINY), *encoder_args, "--out", str(tmp_path / "report"),
                          "--params", str(tmp_path / "params.yaml")]) == 0
    return json.loads((tmp_path / "report" / "metrics.json").read_text())


def test_evaluate_beir_end_to_end(tmp_path):
    metrics = run_beir(tmp_path, "--encoder", str(write_encoder(tmp_path / "encoder")))
    out = tmp_path / "report"
    own = metrics["beir"]
    assert own["queries"] == 3 and metrics["documents"] == 8 and metrics["fusion"] == "dense"
    # q1 "red dress": d1 (red2 summer2 dress2, cos .816) > d8 (red2 evening2 dress2 party1, .784): both
    # relevant, d1 (grade 2) first -> R@1 .5, nDCG 1. q2 "warm coat": only d3 -> R@1 1. q3 "denim":
    # d2 (cos .667) > d7 (.577), both relevant -> R@1 .5. Mean R@1 = 2/3; R@10, MRR, nDCG = 1.
    for system in ("shipped_dense", "shipped"):  # no --fusion: the shipped system is dense
        assert own[system]["recall@1"] == pytest.approx(2 / 3)
        assert own[system]["recall@10"] == own[system]["mrr@10"] == pytest.approx(1.0)
        assert own[system]["ndcg@10"] == pytest.approx(1.0)
    # BM25 finds every relevant document: each contains the query's terms
    assert own["bm25"]["recall@10"] == pytest.approx(1.0)
    paired = own["paired_vs_shipped"]["shipped_dense"]
    assert paired["recall@1"] == paired["recall@1_ci_low"] == paired["recall@1_ci_high"] == 0
    report = (out / "report.md").read_text()
    assert "| shipped dense: selected, INT8 ONNX + sharded HNSW | 0.6667 [" in report
    assert (out / "recall_curves.png").stat().st_size > 0 and (out / "latency.png").stat().st_size > 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "beir.bm25.trec", "beir.qrels", "beir.queries.tsv", "beir.shipped.trec", "beir.shipped_dense.trec"]


def test_evaluate_beir_scores_what_a_published_snapshot_serves(published_root, tmp_path):
    # the tiny catalog's snapshot ships the same tiny encoder and the hybrid (0.5) its fusion stage chose
    metrics = run_beir(tmp_path, "--snapshot", published_root, "--catalog", "fashion", "--base-model", str(BASE))
    assert metrics["beir"]["shipped_dense"]["recall@1"] == pytest.approx(2 / 3)
    assert metrics["fusion"] == "hybrid@0.5" and metrics["encoder"].startswith(f"{published_root}/fashion/")
    assert metrics["beir"]["zero_shot"]["recall@10"] > 0  # a model row when its folder is given


def test_beir_needs_an_encoder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--beir", str(TINY), "--out", str(tmp_path)])
    assert "--snapshot URL --catalog C, or --encoder" in capsys.readouterr().err
