"""select: WiSE-FT interpolation, the tie rule, and the choice on a constructed case with real weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pairs_slices import write_fashion_pairs
from sentence_transformers import SentenceTransformer

from pipelines import select
from pipelines.common.bootstrap import BootstrapParams
from pipelines.guard_set import GUARD_DIR, copy_guard_set
from pipelines.select import choose, interpolate, not_worse, ranking

BASE = Path(__file__).resolve().parents[1] / "models" / "base" / "all-MiniLM-L6-v2"
BOOTSTRAP = {"resamples": 2000, "confidence": 0.95, "seed": 42}
BOOT = BootstrapParams(**BOOTSTRAP)
PARAMS = {"select": {"metric": "fused_recall@10", "wise_alphas": [0.25, 0.5, 0.75], "batch_size": 16,
                     "guard_metrics": ["dense_recall@10", "dense_mrr@10"], "bootstrap": BOOTSTRAP}}


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return SentenceTransformer(str(BASE), device="cpu").state_dict()


def test_interpolating_a_model_with_itself_is_the_identity(state):
    for alpha in (0.0, 0.3, 1.0):
        mixed = interpolate(state, state, alpha)
        assert mixed.keys() == state.keys() and all(torch.equal(mixed[k], state[k]) for k in state)


def test_interpolation_is_linear_in_alpha_and_keeps_integer_buffers(state):
    other = {k: v + 1.0 if v.is_floating_point() else v for k, v in state.items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    for alpha in (0.0, 0.25, 1.0):
        torch.testing.assert_close(interpolate(state, other, alpha)[name], state[name] + alpha)
    integers = [k for k, v in state.items() if not v.is_floating_point()]
    assert all(torch.equal(interpolate(state, other, 0.5)[k], state[k]) for k in integers)
    with pytest.raises(ValueError, match="differ in parameters"):
        interpolate(state, {name: state[name]}, 0.5)


def test_ranking_puts_the_highest_first_and_keeps_the_earliest_on_a_tie():
    scores = {"base": {"m": 0.5}, "finetuned": {"m": 0.7}, "wise@0.5": {"m": 0.7}}
    assert ranking(scores, "m") == ["finetuned", "wise@0.5", "base"]
    assert ranking({"base": {"m": 0.5}, "finetuned": {"m": 0.5}}, "m") == ["base", "finetuned"]


def test_choice_skips_candidates_that_fail_the_guard_and_asks_only_as_far_as_needed():
    scores = {"base": {"m": 0.5}, "finetuned": {"m": 0.8}, "wise@0.5": {"m": 0.7}, "wise@0.25": {"m": 0.6}}
    asked = []
    assert choose(scores, "m", lambda name: asked.append(name) or name != "finetuned") == "wise@0.5"
    assert asked == ["finetuned", "wise@0.5"]
    assert choose(scores, "m", lambda name: False) == "base"  # the base model needs no guard


def test_not_worse_means_no_ci_of_the_difference_below_zero():
    rng = np.random.default_rng(0)
    base = {"r": rng.random(400), "mrr": rng.random(400)}
    same = {"r": base["r"].copy(), "mrr": base["mrr"] + rng.normal(0, 0.01, 400)}
    worse = {"r": base["r"] - 0.2, "mrr": base["mrr"]}
    ok, diffs = not_worse(same, base, ["r", "mrr"], BOOT)
    assert ok and diffs["r"]["mean"] == 0 and diffs["mrr"]["ci_low"] < 0 < diffs["mrr"]["ci_high"]
    ok, diffs = not_worse(worse, base, ["r", "mrr"], BOOT)
    assert not ok and diffs["r"]["ci_high"] < 0


def noised(folder: Path, out: Path) -> Path:
    """A copy of the model with every weight drowned in noise: a clearly worse encoder."""
    model = SentenceTransformer(str(folder), device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.2)
    model.save(str(out))
    return out


def run_select(pairs_dir: Path, base: Path, tuned: Path, tmp_path: Path, catalog: str = "self",
               guards: dict[str, Path] | None = None) -> dict:
    """`semrec select --catalog catalog`, with each guard catalog's validation set copied beside the pairs as
    the guard-set stage does."""
    tmp_path.mkdir()
    for name, folder in (guards or {}).items():
        copy_guard_set(folder, pairs_dir / GUARD_DIR / name)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    assert select.main(["--catalog", catalog, "--pairs", str(pairs_dir), "--base", str(base), "--finetuned",
                        str(tuned), "--out", str(tmp_path / "selected"), "--report", str(tmp_path / "select.json"),
                        "--params", str(tmp_path / "params.yaml")]) == 0
    return json.loads((tmp_path / "select.json").read_text())


def test_selection_picks_the_better_candidate_on_a_constructed_case(tmp_path):
    pairs_dir = write_fashion_pairs(tmp_path / "pairs", rows=400)
    broken = noised(BASE, tmp_path / "broken")
    # a "fine-tuned" model that fine-tuning broke: the base model is chosen, and shipped
    report = run_select(pairs_dir, BASE, broken, tmp_path / "a")
    scores = report["candidates"]
    assert list(scores) == ["base", "finetuned", "wise@0.25", "wise@0.5", "wise@0.75"]
    assert report["chosen"] == "base" and scores["finetuned"]["fused_recall@10"] < scores["base"]["fused_recall@10"]
    chosen = SentenceTransformer(str(tmp_path / "a" / "selected"), device="cpu").state_dict()
    assert all(torch.equal(chosen[k], v) for k, v in SentenceTransformer(str(BASE), device="cpu").state_dict().items())
    # the other way round: the healthy model is the fine-tuned candidate, and it (or the mix nearest it) wins
    # (guarded by another slice of reviews, "other"; the guard set of --catalog itself is skipped)
    other = write_fashion_pairs(tmp_path / "other", rows=300)
    report = run_select(pairs_dir, broken, BASE, tmp_path / "b", "self", {"self": pairs_dir, "other": other})
    assert report["chosen"] in {"finetuned", "wise@0.75"}
    assert report["candidates"][report["chosen"]]["fused_recall@10"] > report["candidates"]["base"]["fused_recall@10"]
    assert list(report["guard"]["catalogs"]) == ["other"] and report["guard"]["checked"][report["chosen"]]["passed"]
    differences = report["guard"]["checked"][report["chosen"]]["difference_vs_base"]["other"]
    assert differences["dense_recall@10"]["mean"] > 0  # the healthy model beats the broken one out of domain too


def test_unknown_metric_is_refused(capsys):
    with pytest.raises(ValueError, match="select.metric must be one of"):
        select.SelectParams("recall@10", (0.5,), 8, (), BOOT)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        select.SelectParams("dense_recall@10", (1.0,), 8, (), BOOT)
    with pytest.raises(ValueError, match="select.guard_metrics must be one of"):
        select.SelectParams("dense_recall@10", (0.5,), 8, ("recall@10",), BOOT)
    with pytest.raises(SystemExit):  # --catalog names the guard set to skip: required
        select.main(["--pairs", "p", "--base", "b", "--finetuned", "f", "--out", "o", "--report", "r"])
    assert "the following arguments are required: --catalog" in capsys.readouterr().err
