"""Fusion: reciprocal rank fusion and the min-max hybrid on known lists, the choice rule, the manifest record,
fusion.json and the fusion params."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from pipelines.common.params import ParamsError
from pipelines.fusion import FusionParams, candidates, choose, shipped_fusion
from pipelines.retrieval.fusion_report import Bm25Prior, FusionReport
from serving.errors import UsageError
from serving.fusion import Fusion, fuse
from serving.manifest import Manifest, ManifestError
from serving.prior import prior_scores

DENSE = np.array([0.9, 0.8, 0.7, 0.1])  # dense ranks 1, 2, 3, 4
LEXICAL = np.array([0.0, 5.0, 9.0, 1.0])  # BM25 ranks -, 2, 1, 3 (candidate 0 shares no term with the query)


def test_reciprocal_rank_fusion_on_known_lists():
    order, scores = fuse(Fusion("rrf", rrf_k=60), DENSE, LEXICAL, k=4)
    expected = [1 / 61, 1 / 62 + 1 / 62, 1 / 63 + 1 / 61, 1 / 64 + 1 / 63]
    assert order.tolist() == [2, 1, 3, 0]  # 1/63 + 1/61 > 2/62 > 1/64 + 1/63 > 1/61
    np.testing.assert_allclose(scores, [expected[i] for i in order.tolist()])
    assert fuse(Fusion("rrf", rrf_k=1), DENSE, LEXICAL, k=1)[0].tolist() == [2]  # 1/4 + 1/2 beats 1/2 + 0


def test_dense_and_hybrid_on_known_lists():
    assert fuse(Fusion("dense"), DENSE, LEXICAL, k=2)[0].tolist() == [0, 1]
    assert fuse(Fusion("hybrid", 1.0), DENSE, LEXICAL, k=2)[0].tolist() == [2, 1]  # BM25 alone
    order, scores = fuse(Fusion("hybrid", 0.5), DENSE, LEXICAL, k=4)
    # min-max: dense (0.9..0.1) -> 1, .875, .75, 0; BM25 (0..9) -> 0, .556, 1, .111
    np.testing.assert_allclose(scores, sorted([0.5, (0.875 + 5 / 9) / 2, 0.875, 1 / 18], reverse=True))
    assert order.tolist() == [2, 1, 0, 3]


@pytest.mark.parametrize("bad, message", [({"method": "sparse"}, "method"), ({"bm25_weight": 1.5}, "bm25_weight"),
                                          ({"method": "rrf", "rrf_k": 0}, "rrf_k"),
                                          ({"link_weight": -1}, "link_weight"),
                                          ({"link_weight": float("inf")}, "link_weight")])
def test_bad_fusions_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        Fusion(**bad)


def test_the_choice_keeps_the_simplest_on_a_tie_and_ships_the_best_hybrid_weight():
    options = candidates([0.7, 0.3], rrf_k=60)
    assert [f.name() for f in options] == ["dense", "rrf@60", "hybrid@0.3", "hybrid@0.7"]
    scores = dict(zip(options, [0.5, 0.8, 0.6, 0.8]))
    assert choose(scores) == Fusion("rrf")  # ties with hybrid@0.7: the simpler one
    assert shipped_fusion(choose(scores), scores) == Fusion("rrf", bm25_weight=0.7)  # mode="hybrid" gets 0.7
    assert choose(dict(zip(options, [0.8, 0.8, 0.8, 0.8]))) == Fusion("dense")


def test_a_format_1_manifest_reads_as_dense_search_with_its_hybrid_weight():
    old = {"catalog": "fashion", "snapshot_id": "s1", "created_at": "2026-01-01T00:00:00+00:00", "git_rev": "x",
           "dvc_lock_sha256": "none", "embedding_model": "m", "dim": 4, "metric": "inner_product", "ef_search": 16,
           "bm25_weight": 0.3, "files": [], "extra": {}, "format_version": 1}
    manifest = Manifest.from_json(json.dumps(old))
    assert manifest.fusion == Fusion("dense", 0.3) and manifest.format_version == 4
    assert json.loads(manifest.to_json())["fusion"] == {"method": "dense", "bm25_weight": 0.3, "rrf_k": 60,
                                                        "link_weight": 0.0, "prior_weight": 0.0}
    with pytest.raises(ManifestError, match="bm25_weight"):
        Manifest.from_json(json.dumps(old | {"bm25_weight": 2.0}))


def test_link_candidates_come_after_the_plain_ones_and_the_shipped_fusion_keeps_its_links():
    options = candidates([0.3], rrf_k=60, link_weights=[0.0, 1.0])
    assert [f.name() for f in options] == ["dense", "rrf@60", "hybrid@0.3",
                                           "dense+links@1", "rrf@60+links@1", "hybrid@0.3+links@1"]
    scores = dict(zip(options, [0.5, 0.6, 0.6, 0.5, 0.7, 0.65]))
    assert shipped_fusion(choose(scores), scores) == Fusion("rrf", 0.3, link_weight=1.0)
    assert choose(dict(zip(options, [0.5, 0.6, 0.6, 0.5, 0.6, 0.6]))) == Fusion("rrf")  # a tie: no links


def test_format_2_and_3_manifests_read_without_a_prior_and_a_newer_one_is_refused_by_version():
    two = {"catalog": "movies", "snapshot_id": "s2", "created_at": "2026-01-01T00:00:00+00:00", "git_rev": "x",
           "dvc_lock_sha256": "none", "embedding_model": "m", "dim": 4, "metric": "inner_product", "ef_search": 16,
           "fusion": {"method": "rrf", "bm25_weight": 0.4, "rrf_k": 60}, "files": [], "extra": {}, "format_version": 2}
    assert Manifest.from_json(json.dumps(two)).fusion == Fusion("rrf", 0.4, link_weight=0.0, prior_weight=0.0)
    three = two | {"format_version": 3, "fusion": {**two["fusion"], "link_weight": 1.0}}
    assert Manifest.from_json(json.dumps(three)).fusion == Fusion("rrf", 0.4, link_weight=1.0, prior_weight=0.0)
    with pytest.raises(ManifestError, match="format_version 5"):
        Manifest.from_json(json.dumps(two | {"format_version": 5}))


def test_the_prior_blends_into_the_normalised_fused_score():
    prior = np.array([0.0, 0.0, 0.0, 1.0])  # candidate 3: the most liked item, last by both retrievers
    assert fuse(Fusion("dense", prior_weight=0.6), DENSE, LEXICAL, k=1, prior=prior)[0].tolist() == [3]
    order, scores = fuse(Fusion("hybrid", 0.5, prior_weight=0.2), DENSE, LEXICAL, k=4, prior=prior)
    plain = fuse(Fusion("hybrid", 0.5), DENSE, LEXICAL, k=4)  # 0.5, 0.7158, 0.875, 0.0556 by candidate
    hybrid = np.array([0.5, (0.875 + 5 / 9) / 2, 0.875, 1 / 18])
    expected = 0.8 * (hybrid - hybrid.min()) / (hybrid.max() - hybrid.min()) + 0.2 * prior
    np.testing.assert_allclose(scores, np.sort(expected)[::-1])
    assert order.tolist() == [2, 1, 0, 3] == plain[0].tolist()  # 0.2 is not enough to lift candidate 3
    assert fuse(Fusion("rrf", prior_weight=0.9), DENSE, LEXICAL, k=1, prior=prior)[0].tolist() == [3]
    # no prior given (a snapshot without prior/): the weight changes nothing
    assert (fuse(Fusion("rrf", prior_weight=0.9), DENSE, LEXICAL, k=4)[0].tolist()
            == fuse(Fusion("rrf"), DENSE, LEXICAL, k=4)[0].tolist())


def test_prior_scores_grow_with_the_log_of_the_count():
    np.testing.assert_allclose(prior_scores(np.array([0, 1, 3, 15])), [0, 0.25, 0.5, 1.0])
    assert prior_scores(np.zeros(3, dtype=np.int64)).tolist() == [0.0, 0.0, 0.0]


def test_prior_candidates_come_after_the_plain_ones_and_the_shipped_fusion_keeps_its_prior():
    options = candidates([0.3], rrf_k=60, link_weights=[1.0], prior_weights=[0.5, 0.0])
    assert [f.name() for f in options] == [
        "dense", "rrf@60", "hybrid@0.3", "dense+prior@0.5", "rrf@60+prior@0.5", "hybrid@0.3+prior@0.5",
        "dense+links@1", "rrf@60+links@1", "hybrid@0.3+links@1",
        "dense+prior@0.5+links@1", "rrf@60+prior@0.5+links@1", "hybrid@0.3+prior@0.5+links@1"]
    scores = dict(zip(options, [0.1, 0.2, 0.3, 0.4, 0.6, 0.5, 0, 0, 0, 0, 0, 0]))
    assert shipped_fusion(choose(scores), scores) == Fusion("rrf", 0.3, prior_weight=0.5)
    with pytest.raises(ValueError, match="prior_weight"):
        Fusion(prior_weight=1.5)


def test_a_fusion_report_reads_back_what_it_wrote_and_says_whether_a_prior_was_tuned(tmp_path):
    chosen = Fusion("hybrid", 0.3, prior_weight=0.5)
    report = FusionReport(chosen, "recall@10", 4, 64, {"dense": 0.5, chosen.name(): 0.75}, Bm25Prior(0.2, {"0": 0.4}))
    report.write(tmp_path / "fusion.json")
    read = FusionReport.read(tmp_path / "fusion.json")
    assert read == report and read.has_prior and read.to_json()["chosen"] == "hybrid@0.3+prior@0.5"
    read.check_counts("popularity.parquet", "fusion.json")
    with pytest.raises(UsageError, match="pass --popularity"):
        read.check_counts(None, "fusion.json")
    plain = replace(report, bm25_prior=None)
    plain.write(tmp_path / "plain.json")
    assert not FusionReport.read(tmp_path / "plain.json").has_prior and "bm25_prior" not in plain.to_json()
    with pytest.raises(UsageError, match="tuned no popularity prior"):
        plain.check_counts("popularity.parquet", "plain.json")
    (tmp_path / "bad.json").write_text('{"fusion": {"method": "dense"}}')
    with pytest.raises(UsageError, match="bad.json: not a fusion stage report"):
        FusionReport.read(tmp_path / "bad.json")


def test_fusion_params_are_typed_and_a_wrong_key_or_type_is_named():
    section = {"metric": "recall@10", "weights": [0.5], "rrf_k": 60, "link_weights": [], "prior_weights": [1]}
    assert FusionParams.from_section(section).prior_weights == (1.0,)
    for bad, message in (({**section, "rrf_k": True}, "fusion.rrf_k: expected int"),
                         ({**section, "weights": 0.5}, "fusion.weights: expected a list"),
                         ({**section, "metric": "recall@ten"}, "fusion: metric .recall@ten. is not"),
                         ({**section, "weight": [0.5]}, r"fusion: unknown key\(s\) \['weight'\]")):
        with pytest.raises(ParamsError, match=message):
            FusionParams.from_section(bad)
