"""evaluate on the tiny catalog: every ablation row, CIs, paired differences, cosine, report and plots.

Dense INT8 rows use the tiny hand-checkable ONNX encoder of tests/snapshot_fixture.py; the zero-shot
and "fine-tuned" rows both load the real base MiniLM, so their paired difference must be exactly 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import evaluate
from pipelines.evaluate import hard_queries

BASE = Path(__file__).resolve().parents[1] / "models" / "base" / "all-MiniLM-L6-v2"
NAMES = ["recall@1", "recall@10", "mrr@10", "ndcg@10"]
PARAMS = {"evaluate": {"metrics": NAMES, "curve_ks": [1, 5, 10], "max_queries": 100, "seed": 1,
                       "reference": "fp32", "bootstrap": {"resamples": 300, "confidence": 0.95, "seed": 1},
                       "batch_size": 8, "latency_queries": 3,
                       "beir": {"shards": 1, "workers": 1, "m": 8, "ef_construction": 40, "recall_target": 0.98,
                                "ef_search_grid": [16], "tune_k": 2, "reference": "int8_hnsw"}}}


def pairs(rows: list[tuple[str, str]], kind: str = "review", query_ids: list[str] | None = None) -> pa.Table:
    return pa.table({"query_id": query_ids or [f"q{i}" for i in range(len(rows))], "query": [q for q, _ in rows],
                     "item_id": [i for _, i in rows], "kind": [kind] * len(rows)})


def test_hard_queries_group_pairs_by_query_text():
    found = hard_queries(pairs([("red dress", "i01"), ("warm coat", "i10"), ("red dress", "i02")]), 10, seed=1)
    assert found.texts == ["red dress", "warm coat"]
    assert found.relevance == [{"i01": 1.0, "i02": 1.0}, {"i10": 1.0}]
    assert found.exclude == [set(), set()]
    # co-liked: the query stands for its anchor item, which is dropped from the ranking before scoring
    liked = hard_queries(pairs([("Vertigo", "m2"), ("Vertigo", "m3")], "co_liked", ["m1>m2", "m1>m3"]), 10, 1)
    assert liked.exclude == [{"m1"}] and liked.fetch_k(10) == 11
    assert liked.rankings([["m1", "m2", "m9", "m3"]], 2) == [["m2", "m9"]]
    sample = hard_queries(pairs([(f"query {i}", "i01") for i in range(50)]), 5, seed=1)
    assert len(set(sample.texts)) == 5 and sample == hard_queries(pairs([(f"query {i}", "i01") for i in range(50)]), 5, 1)


def test_catalog_evaluation_writes_the_ablation(fixture_inputs, tmp_path):
    reviews = pairs([("red dress", "i01"), ("red dress", "i02"), ("warm coat", "i10")])
    pq.write_table(pa.concat_tables([reviews, pairs([("denim jeans", "i05")], "synthetic", ["s1"])]),
                   tmp_path / "test_hard.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    out = tmp_path / "report"
    argv = ["--documents", fixture_inputs["documents"], "--pairs", tmp_path / "test_hard.parquet",
            "--embeddings", fixture_inputs["embeddings"], "--index", fixture_inputs["index"], "--base-model", BASE,
            "--finetuned", BASE, "--encoder", fixture_inputs["encoder"], "--out", out,
            "--params", tmp_path / "params.yaml"]
    assert evaluate.main([str(a) for a in argv]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["queries"], metrics["relevant_pairs"], metrics["documents"]) == (3, 4, 12)
    # tiny encoder: "red dress" ranks i01 (cos .816) then i02 (.707); "warm coat" i10 first (.707);
    # "denim jeans" i05 first (.816) -> recall@1 = (1/2 + 1 + 1) / 3, everything else 1
    for system in ("int8_exact", "int8_hnsw"):
        assert metrics[system]["recall@1"] == pytest.approx(5 / 6)
        assert metrics[system]["mrr@10"] == metrics[system]["recall@10"] == pytest.approx(1.0)
    for system in ("bm25", "zero_shot", "fp32", "int8_exact", "int8_hnsw"):
        for name in NAMES:
            values = metrics[system]
            assert values[f"{name}_ci_low"] <= values[name] <= values[f"{name}_ci_high"]
    same_model = metrics["paired_vs_fp32"]["zero_shot"]
    assert all(same_model[key] == 0 for key in same_model)
    assert set(metrics["paired_vs_fp32"]) == {"bm25", "zero_shot", "int8_exact", "int8_hnsw"}
    cosine = metrics["mean_cosine"]
    assert cosine["zero_shot"] == cosine["fp32"] and cosine["fp32"]["relevant"] > cosine["fp32"]["random"]
    assert metrics["latency_ms"]["total_p50"] > 0
    by_kind = metrics["by_kind"]  # the same rankings scored per kind of query
    assert (by_kind["review"]["queries"], by_kind["synthetic"]["queries"]) == (2, 1)
    assert by_kind["review"]["int8_exact"]["recall@1"] == pytest.approx(3 / 4)
    assert by_kind["synthetic"]["int8_exact"]["recall@1"] == 1.0
    report = (out / "report.md").read_text()
    assert "## synthetic queries alone (1)" in report
    assert report.count("| BM25 (bm25s) |") == 4  # ablation row, paired-difference row, one per kind
    assert "| fine-tuned, INT8 ONNX, exact | 0.8333 [" in report
    assert (out / "recall_curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("change, message", [({"metrics": ["recall@10", "hits@3"]}, "hits@3"),
                                             ({"reference": "gpt"}, "evaluate.reference must be one of")])
def test_bad_params_fail_before_any_work(tmp_path, change, message):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"evaluate": PARAMS["evaluate"] | change}))
    with pytest.raises(ValueError, match=message):
        evaluate.main(["--beir", "unused", "--encoder", "unused", "--out", str(tmp_path),
                       "--params", str(tmp_path / "params.yaml")])


def test_relevant_items_without_documents_fail(fixture_inputs, tmp_path):
    pq.write_table(pairs([("red dress", "nope")]), tmp_path / "test_hard.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    argv = ["--documents", fixture_inputs["documents"], "--pairs", tmp_path / "test_hard.parquet",
            "--embeddings", fixture_inputs["embeddings"], "--index", fixture_inputs["index"], "--base-model", BASE,
            "--finetuned", BASE, "--encoder", fixture_inputs["encoder"], "--out", tmp_path / "report",
            "--params", tmp_path / "params.yaml"]
    with pytest.raises(ValueError, match=r"test_hard.parquet: 1 relevant item\(s\) have no document"):
        evaluate.main([str(a) for a in argv])
