"""evaluate on the tiny catalog: every system, CIs, paired differences against the shipped system, TREC runs.

The shipped rows use the tiny hand-checkable ONNX encoder of tests/snapshot_fixture.py and the fusion its
fusion stage chose (hybrid, weight 0.5); the model rows all load the real base MiniLM, so they agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import evaluate
from pipelines.common.metrics import per_query
from pipelines.common.queries import query_set
from pipelines.cross_catalog import read_queries, read_run

BASE = Path(__file__).resolve().parents[1] / "models" / "base" / "all-MiniLM-L6-v2"
NAMES = ["recall@1", "recall@10", "mrr@10", "ndcg@10"]
SYSTEMS = {"bm25", "zero_shot", "finetuned", "selected", "shipped_dense", "shipped"}
PARAMS = {"evaluate": {"metrics": NAMES, "curve_ks": [1, 5, 10], "max_queries": 100, "seed": 1,
                       "bootstrap": {"resamples": 300, "confidence": 0.95, "seed": 1},
                       "batch_size": 8, "latency_queries": 3, "warn_ci_half_width": 0.1,
                       "beir": {"shards": 1, "workers": 1, "m": 8, "ef_construction": 40, "recall_target": 0.98,
                                "ef_search_grid": [16], "tune_k": 2}}}


def pairs(rows: list[tuple[str, str]], kind: str = "review", query_ids: list[str] | None = None) -> pa.Table:
    return pa.table({"query_id": query_ids or [f"q{i}" for i in range(len(rows))], "query": [q for q, _ in rows],
                     "item_id": [i for _, i in rows], "kind": [kind] * len(rows)})


def test_query_sets_group_pairs_by_query_text():
    found = query_set(pairs([("red dress", "i01"), ("warm coat", "i10"), ("red dress", "i02")]), 10, seed=1)
    assert found.texts == ["red dress", "warm coat"]
    assert found.relevance == [{"i01": 1.0, "i02": 1.0}, {"i10": 1.0}]
    assert found.exclude == [set(), set()]
    # co-liked: the query stands for its anchor item, which is dropped from the ranking before scoring
    liked = query_set(pairs([("Vertigo", "m2"), ("Vertigo", "m3")], "co_liked", ["m1>m2", "m1>m3"]), 10, 1)
    assert liked.exclude == [{"m1"}] and liked.fetch_k(10) == 11
    assert liked.rankings([["m1", "m2", "m9", "m3"]], 2) == [["m2", "m9"]]
    sample = query_set(pairs([(f"query {i}", "i01") for i in range(50)]), 5, seed=1)
    assert len(set(sample.texts)) == 5 and sample == query_set(pairs([(f"query {i}", "i01") for i in range(50)]), 5, 1)


def run_catalog(fixture_inputs: dict, tmp_path: Path, test: pa.Table, hard: pa.Table | None = None) -> Path:
    pq.write_table(test, tmp_path / "test.parquet")
    pq.write_table(hard if hard is not None else test, tmp_path / "test_hard.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (tmp_path / "select.json").write_text(json.dumps({"chosen": "finetuned", "metric": "recall@10",
                                                      "validation_queries": 4, "candidates": {
                                                          "base": {"recall@10": 0.5}, "finetuned": {"recall@10": 0.75}}}))
    out = tmp_path / "report"
    argv = ["--documents", fixture_inputs["documents"], "--test", f"test={tmp_path / 'test.parquet'}",
            "--test", f"test_hard={tmp_path / 'test_hard.parquet'}", "--index", fixture_inputs["index"],
            "--base-model", BASE, "--finetuned", BASE, "--selected", BASE, "--select", tmp_path / "select.json",
            "--encoder", fixture_inputs["encoder"], "--fusion", fixture_inputs["fusion"], "--out", out,
            "--params", tmp_path / "params.yaml"]
    assert evaluate.main([str(a) for a in argv]) == 0
    return out


def test_catalog_evaluation_scores_every_system_against_the_shipped_one(fixture_inputs, tmp_path):
    test = pa.concat_tables([pairs([("red dress", "i01"), ("red dress", "i02"), ("warm coat", "i10"),
                                    ("linen sku77", "i08")]), pairs([("denim jeans", "i05")], "synthetic", ["s1"])])
    hard = pairs([("dress", "i01"), ("coat", "i10")])
    out = run_catalog(fixture_inputs, tmp_path, test, hard)
    metrics = json.loads((out / "metrics.json").read_text())
    own = metrics["test"]
    assert (own["queries"], own["relevant_pairs"], metrics["documents"]) == (4, 5, 12)
    assert SYSTEMS <= set(own) and set(own["paired_vs_shipped"]) == SYSTEMS - {"shipped"}
    # tiny encoder: "red dress" ranks i01 (cos .816) then i02 (.707); "warm coat" i10 first (.707); "denim jeans"
    # i05 (.816); "linen sku77": dense prefers the linen shirt i07 (sku77 is unknown to it) -> R@1 (1/2+1+1+0)/4
    assert own["shipped_dense"]["recall@1"] == pytest.approx(5 / 8)
    # ... and the shipped fusion (hybrid 0.5, as the fixture's fusion stage chose) lets BM25 find i08
    assert own["shipped"]["recall@1"] == pytest.approx(7 / 8)
    assert own["paired_vs_shipped"]["shipped_dense"]["recall@1"] == pytest.approx(2 / 8)
    assert own["zero_shot"] == own["finetuned"] == own["selected"]  # one model, three names (selected: aliased)
    for system in SYSTEMS:
        for name in NAMES:
            assert own[system][f"{name}_ci_low"] <= own[system][name] <= own[system][f"{name}_ci_high"]
    assert (own["by_kind"]["review"]["queries"], own["by_kind"]["synthetic"]["queries"]) == (3, 1)
    assert metrics["test_hard"]["queries"] == 2 and metrics["fusion"] == "hybrid@0.5"
    assert metrics["select"]["chosen"] == "finetuned" and metrics["latency_ms"]["total_p50"] > 0
    report = (out / "report.md").read_text()
    assert "## test: 4 queries" in report and "## test_hard: 2 queries" in report
    assert "### synthetic queries alone (1)" in report and "chose **finetuned**" in report
    assert (out / "recall_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_trec_runs_and_qrels_reproduce_every_reported_number(fixture_inputs, tmp_path):
    out = run_catalog(fixture_inputs, tmp_path, pairs([("red dress", "i01"), ("warm coat", "i10"),
                                                       ("linen sku77", "i08"), ("blue denim", "i05")]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["same_queries_as"] == {"test_hard": "test"} and "test_hard" not in metrics  # scored once
    qids, queries = read_queries(out / "runs", "test")
    for system in SYSTEMS:
        recomputed = per_query(read_run(out / "runs" / f"test.{system}.trec", qids), queries.relevance, NAMES)
        assert {n: pytest.approx(v.mean()) for n, v in recomputed.items()} == {
            n: metrics["test"][system][n] for n in NAMES}


def test_relevant_items_without_documents_fail(fixture_inputs, tmp_path):
    with pytest.raises(ValueError, match=r"test.parquet: 1 relevant item\(s\) have no document"):
        run_catalog(fixture_inputs, tmp_path, pairs([("red dress", "nope")]))


def test_bad_metric_names_fail_before_any_work(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"evaluate": PARAMS["evaluate"] | {
        "metrics": ["recall@10", "hits@3"]}}))
    with pytest.raises(ValueError, match="hits@3"):
        evaluate.main(["--beir", "unused", "--encoder", "unused", "--out", str(tmp_path),
                       "--params", str(tmp_path / "params.yaml")])


def test_cross_catalog_guard_reads_the_other_catalogs_base_run(fixture_inputs, tmp_path):
    out = run_catalog(fixture_inputs, tmp_path, pairs([("red dress", "i01"), ("warm coat", "i10"),
                                                       ("linen sku77", "i08"), ("blue denim", "i05")]))
    docs = tmp_path / "other"
    docs.mkdir()
    pq.write_table(pq.read_table(fixture_inputs["documents"]), docs / "documents.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"cross_catalog": {
        "metrics": ["recall@10", "mrr@10"], "bootstrap": {"resamples": 200, "confidence": 0.95, "seed": 1},
        "batch_size": 8}}))
    from pipelines import cross_catalog

    assert cross_catalog.main(["--check", "movies", str(BASE), "fashion", str(docs), str(out / "runs"),
                               "--out", str(tmp_path / "cross.json"), "--params", str(tmp_path / "params.yaml")]) == 0
    report = json.loads((tmp_path / "cross.json").read_text())["movies_on_fashion"]
    # the "selected" encoder is the base model itself: the same rankings as the base run, a zero difference
    assert report["queries"] == 4 and report["not_worse"] is True
    assert report["difference_mrr@10"] == report["difference_mrr@10_ci_low"] == 0
    assert report["selected_mrr@10"] == report["zero_shot_mrr@10"] > 0
    assert "| movies | fashion | 4 |" in (tmp_path / "cross.md").read_text()
