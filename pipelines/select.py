"""select stage: the shipped encoder is chosen on the validation split, not assumed.

Candidates, in this order (a tie keeps the earlier one, so fine-tuning has to earn its place):
- `base`: the untouched base model (zero-shot);
- `finetuned`: the train stage's best checkpoint (by validation; a LoRA model when `train.lora` is on);
- `wise@a`: WiSE-FT weight-space interpolations theta = (1 - a) * base + a * finetuned for every a in
  `select.wise_alphas` (Wortsman et al. 2022: they keep much of the zero-shot model's robustness out of
  domain at almost no cost).
Each candidate is scored like train's checkpoints (pipelines.retrieval.validation: dense, and RRF-fused with
BM25 as the shipped system will be) on the validation pairs. The chosen one is the best by `select.metric`
that passes the out-of-domain guard: on every guard set's validation pairs (the other catalogs listed in
params `select.guard`, copied to `<pairs>/guard/<catalog>/` by the guard-set stage: real text this encoder
never trained on) it must not be worse than the base model, i.e. for each of
`select.guard_metrics` the paired bootstrap CI of (candidate - base) must not lie below 0 (the rule the
cross_catalog stage checks on the test sets). Candidates are guard-checked best first, until one passes
(the base model always does). It is saved as a plain sentence-transformers folder that quantize / embed /
index / publish use. Every score, every guard check and the choice go to the report.

    semrec select --catalog fashion --pairs data/fashion/pairs --base models/base/all-MiniLM-L6-v2 \
        --finetuned models/fashion/finetuned --out models/fashion/selected --report reports/fashion/select.json

A catalog trained with `train.enabled: false` has no fine-tuned model: select then ships the base model
unscored and records "base only".
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from pipelines.common.atomic import atomic_dir, write_json
from pipelines.common.bootstrap import BootstrapParams, paired_difference, resample_weights
from pipelines.common.finetuned import is_trained
from pipelines.common.params import load_section, typed_section
from pipelines.guard_set import guard_sets
from pipelines.retrieval.validation import Validation, check_metric


@dataclass(frozen=True)
class SelectParams:
    metric: str  # pipelines.retrieval.validation.NAMES, on the validation pairs
    wise_alphas: tuple[float, ...]
    batch_size: int
    guard_metrics: tuple[str, ...]  # on other catalogs' validation pairs: not worse than the base model
    bootstrap: BootstrapParams  # of the guard's paired CIs
    guard: tuple[str, ...] = ()  # the catalogs guarding each other: read by dvc.yaml's guard stage, not here

    def __post_init__(self) -> None:
        check_metric(self.metric, "select.metric")
        for name in self.guard_metrics:
            check_metric(name, "select.guard_metrics")
        if not all(0.0 < a < 1.0 for a in self.wise_alphas):
            raise ValueError(f"select.wise_alphas must lie strictly between 0 and 1, not {list(self.wise_alphas)}")

    @classmethod
    def from_section(cls, section: object) -> SelectParams:
        return typed_section(cls, section, "select")


def interpolate(base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], alpha: float
                ) -> dict[str, torch.Tensor]:
    """(1 - alpha) * base + alpha * tuned, tensor by tensor; integer buffers (position ids) come from `tuned`."""
    if base.keys() != tuned.keys():
        raise ValueError(f"the two models differ in parameters: {sorted(set(base) ^ set(tuned))[:5]}")
    return {name: torch.lerp(base[name], value, alpha) if value.is_floating_point() else value.clone()
            for name, value in tuned.items()}


def ranking(scores: Mapping[str, Mapping[str, float]], metric: str) -> list[str]:
    """Candidates best first by `metric`; ties keep the earlier one (the base model comes first)."""
    order = list(scores)
    return sorted(order, key=lambda name: (-scores[name][metric], order.index(name)))


def choose(scores: Mapping[str, Mapping[str, float]], metric: str, passes: Callable[[str], bool]) -> str:
    """The best candidate by `metric` that `passes` the guard, asked best first (lazily: a check costs encoding)."""
    return next(name for name in ranking(scores, metric) if name == "base" or passes(name))


def not_worse(candidate: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray], metrics: Sequence[str],
              bootstrap: BootstrapParams) -> tuple[bool, dict[str, dict[str, float]]]:
    """Whether, for every metric, the paired CI of candidate - base (per-query values) does not lie below 0."""
    n = len(next(iter(base.values())))
    weights = resample_weights(n, bootstrap.resamples, bootstrap.seed)
    diffs = {m: paired_difference(candidate[m], base[m], weights, bootstrap.confidence) for m in metrics}
    return all(d.high >= 0 for d in diffs.values()), {m: d.to_json() for m, d in diffs.items()}


def select(pairs_dir: Path, base_dir: Path, finetuned_dir: Path, params: SelectParams, out: Path,
           guards: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """Score every candidate, save the best that passes the guards to `out`; return the report. Every candidate
    runs in the fine-tuned model's module (its max_seq_length included), so they differ in weights only."""
    validation = Validation.load(pairs_dir)
    guards = {name: Validation.load(path) for name, path in (guards or {}).items()
              if path.resolve() != pairs_dir.resolve()}
    base = SentenceTransformer(str(base_dir), device="cpu")
    tuned = SentenceTransformer(str(finetuned_dir), device="cpu")
    base_state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    tuned_state = {k: v.detach().clone() for k, v in tuned.state_dict().items()}
    states = {"base": base_state, "finetuned": tuned_state}
    states |= {f"wise@{a:g}": interpolate(base_state, tuned_state, a) for a in params.wise_alphas}
    model = tuned  # one module, loaded with each candidate's weights in turn
    scores, seconds = {}, {}
    for name, state in states.items():
        started = time.perf_counter()
        model.load_state_dict(state)
        scores[name] = validation.score(model, params.batch_size)
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"select: {name}: {scores[name]}")

    guard_values: dict[str, dict[str, dict[str, np.ndarray]]] = {}  # candidate -> guard -> metric -> per query
    checks: dict[str, dict[str, Any]] = {}

    def values(name: str) -> dict[str, dict[str, np.ndarray]]:
        if name not in guard_values:
            model.load_state_dict(states[name])
            guard_values[name] = {g: v.query_scores(model, params.batch_size) for g, v in guards.items()}
        return guard_values[name]

    def passes(name: str) -> bool:
        results = {g: not_worse(values(name)[g], values("base")[g], params.guard_metrics, params.bootstrap)
                   for g in guards}
        checks[name] = {"passed": all(ok for ok, _ in results.values()),
                        "difference_vs_base": {g: diffs for g, (_, diffs) in results.items()}}
        print(f"select: guard {name}: {checks[name]}")
        return checks[name]["passed"]

    chosen = choose(scores, params.metric, passes)
    model.load_state_dict(states[chosen])
    with atomic_dir(out) as tmp:
        model.save(str(tmp))
    return {"chosen": chosen, "metric": params.metric, "validation_queries": len(validation.queries.texts),
            "candidates": scores, "seconds": seconds,
            "guard": {"catalogs": {g: len(v.queries.texts) for g, v in guards.items()},
                      "metrics": list(params.guard_metrics), "checked": checks}}


def base_only(base_dir: Path, out: Path) -> dict[str, Any]:
    """Ship the base model as it is: the catalog was not fine-tuned (train.enabled false)."""
    with atomic_dir(out) as tmp:
        SentenceTransformer(str(base_dir), device="cpu").save(str(tmp))
    return {"chosen": "base", "base_only": True, "reason": "not fine-tuned (train.enabled is false)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec select", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True, help="a key of params.yaml catalogs")
    parser.add_argument("--pairs", required=True, type=Path,
                        help="pairs folder (validation.parquet, documents.parquet, guard/<catalog>/)")
    parser.add_argument("--base", required=True, type=Path, help="the base sentence-transformers folder")
    parser.add_argument("--finetuned", required=True, type=Path, help="the train stage's output folder")
    parser.add_argument("--out", required=True, type=Path, help="the chosen encoder (sentence-transformers folder)")
    parser.add_argument("--report", required=True, type=Path, help="select.json: every candidate's scores, the choice")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = SelectParams.from_section(load_section("select", args.params))
    if not is_trained(args.finetuned):
        report = base_only(args.base, args.out)
    else:
        report = select(args.pairs, args.base, args.finetuned, params, args.out, guard_sets(args.pairs, args.catalog))
    write_json(report, args.report)
    print(f"select: chose {report['chosen']}" + (" (base only: not fine-tuned)" if report.get("base_only") else
                                                  f" ({params.metric} {report['candidates'][report['chosen']][params.metric]})"))
    return 0
