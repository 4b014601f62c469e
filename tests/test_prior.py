"""The popularity prior end to end on the tiny catalog: chosen on validation, shipped as prior/, served.

"summer dress" ties three items by dense and by BM25 ("red", "blue", "white summer dress"), and a tie goes
to the first global row (i12); only the prior can put the most liked one, i03, first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from snapshot_fixture import ITEMS, PUBLISH_PARAMS, publish_tiny

from pipelines import evaluate, fusion
from pipelines.common.schemas import POPULARITY
from serving.manifest import ManifestError
from serving.prior import PRIOR_FILE
from serving.reader import Reader

LIKED = {"i03": 40, "i01": 1}  # every other item: 0


@pytest.fixture(scope="module")
def inputs(fixture_inputs: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The fixture's publish inputs with popularity.parquet, and a fusion stage run that tries the prior."""
    root = tmp_path_factory.mktemp("prior")
    popularity = root / "popularity.parquet"
    pq.write_table(pa.table({"item_id": [item[0] for item in ITEMS],
                             "positives": [LIKED.get(item[0], 0) for item in ITEMS]}, schema=POPULARITY), popularity)
    pq.write_table(pa.table({"query_id": ["q1", "q2"], "query": ["summer dress", "linen sku77"],
                             "item_id": ["i03", "i08"], "kind": ["review"] * 2}), root / "validation.parquet")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(PUBLISH_PARAMS | {"fusion": PUBLISH_PARAMS["fusion"] | {"prior_weights": [0.5]}}))
    out = root / "fusion.json"
    argv = ["--index", fixture_inputs["index"], "--encoder", fixture_inputs["encoder"], "--documents",
            fixture_inputs["documents"], "--validation", root / "validation.parquet", "--popularity", popularity,
            "--out", out, "--params", params]
    assert fusion.main([str(a) for a in argv]) == 0
    return fixture_inputs | {"fusion": out, "params": params, "popularity": popularity}


def test_the_fusion_stage_chooses_the_prior_when_validation_says_so(inputs):
    report = json.loads(inputs["fusion"].read_text())
    assert report["fusion"]["prior_weight"] == 0.5 and "+prior@0.5" in report["chosen"]
    assert report["validation"]["hybrid@0.5"] == 0.5 and report["validation"][report["chosen"]] == 1.0
    assert report["bm25_prior"]["prior_weight"] == 0.5  # BM25 alone ties the three dresses too


def test_a_published_prior_is_vouched_for_by_the_manifest_and_served(inputs, tmp_path):
    root = str(tmp_path / "published")
    assert publish_tiny(inputs, root, "--popularity", str(inputs["popularity"])) == 0
    reader = Reader.open(root, "fashion", cache_dir=tmp_path / "cache")
    assert reader.manifest.fusion.prior_weight == 0.5 and reader.manifest.format_version == 4
    assert reader.manifest.file(f"prior/{PRIOR_FILE}").bytes > 0
    assert reader.search("summer dress", k=1)[0].item_id == "i03"
    assert reader.search("summer dress", k=1, mode="dense")[0].item_id == "i03"  # a mode keeps the prior
    assert reader.search("linen sku77", k=1)[0].item_id == "i08"  # text still decides where it can
    snapshot = reader._snapshot
    np.testing.assert_allclose(snapshot.prior[snapshot.index.global_ids().index("i03")], 1.0)


def test_publishing_a_chosen_prior_without_its_counts_is_refused(inputs, tmp_path):
    with pytest.raises(ValueError, match="pass --popularity"):
        publish_tiny(inputs, str(tmp_path / "published"))


def test_a_listed_prior_file_that_was_tampered_with_is_refused(inputs, tmp_path):
    root = tmp_path / "published"
    assert publish_tiny(inputs, str(root), "--popularity", str(inputs["popularity"])) == 0
    snapshot = next(p for p in (root / "fashion").iterdir() if p.is_dir())
    np.save(snapshot / "prior" / PRIOR_FILE, np.zeros(len(ITEMS), dtype=np.int64))  # same size, other bytes
    with pytest.raises(ManifestError, match="prior"):
        Reader.open(str(root), "fashion", cache_dir=tmp_path / "cache", verify="sha256")


def test_counts_that_miss_an_indexed_item_are_refused(inputs, tmp_path):
    short = tmp_path / "popularity.parquet"
    pq.write_table(pq.read_table(inputs["popularity"]).slice(1), short)
    with pytest.raises(KeyError, match="no popularity count"):
        publish_tiny(inputs, str(tmp_path / "published"), "--popularity", str(short))


def test_a_snapshot_without_prior_reads_as_before(published_root: str, tmp_path: Path):
    reader = Reader.open(published_root, "fashion", cache_dir=tmp_path / "cache")
    assert reader._snapshot.prior is None and reader.manifest.fusion.prior_weight == 0.0


def test_evaluate_scores_the_popularity_baselines_beside_the_shipped_prior(inputs, tmp_path):
    pq.write_table(pa.table({"query_id": ["t1", "t2", "t3"], "query": ["summer dress", "red dress", "linen sku77"],
                             "item_id": ["i03", "i01", "i08"], "kind": ["review"] * 3}), tmp_path / "test.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"evaluate": {
        "metrics": ["recall@1", "recall@10"], "curve_ks": [1, 10], "max_queries": 100, "seed": 1,
        "bootstrap": {"resamples": 200, "confidence": 0.95, "seed": 1}, "batch_size": 8, "latency_queries": 2,
        "warn_ci_half_width": 0.1, "beir": {}}}))  # the BEIR mode's index settings: unread here
    argv = ["--documents", inputs["documents"], "--test", f"test={tmp_path / 'test.parquet'}",
            "--index", inputs["index"], "--encoder", inputs["encoder"], "--fusion", inputs["fusion"],
            "--popularity", inputs["popularity"], "--out", tmp_path / "out", "--params", tmp_path / "params.yaml"]
    assert evaluate.main([str(a) for a in argv]) == 0
    own = json.loads((tmp_path / "out" / "metrics.json").read_text())["test"]
    assert {"popularity", "bm25", "bm25_prior", "shipped_dense", "shipped"} == set(own) - {
        "queries", "relevant_pairs", "paired_vs_shipped"}
    # the most liked list is i03, i01, then the unliked items: only "summer dress" finds its item first
    assert own["popularity"]["recall@1"] == pytest.approx(1 / 3)
    runs = tmp_path / "out" / "runs"
    assert {line.split()[2] for line in (runs / "test.popularity.trec").read_text().splitlines()
            if line.split()[3] == "1"} == {"i03"}
    assert (runs / "test.bm25_prior.trec").is_file()


def test_evaluate_with_counts_needs_a_fusion_report_that_tuned_the_lexical_prior(inputs, fixture_inputs, tmp_path):
    argv = ["--documents", inputs["documents"], "--test", f"test={inputs['validation']}", "--index", inputs["index"],
            "--encoder", inputs["encoder"], "--fusion", fixture_inputs["fusion"], "--popularity", inputs["popularity"],
            "--out", tmp_path / "out"]
    with pytest.raises(ValueError, match="tuned no popularity prior"):
        evaluate.main([str(a) for a in argv])
