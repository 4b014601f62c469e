"""select stage: the shipped encoder is chosen on the validation split, not assumed.

Candidates, in this order (a tie keeps the earlier one, so fine-tuning has to earn its place):
- `base`: the untouched base model (zero-shot);
- `finetuned`: the train stage's best checkpoint (by validation; a LoRA model when `train.lora` is on);
- `wise@a`: WiSE-FT weight-space interpolations theta = (1 - a) * base + a * finetuned for every a in
  `select.wise_alphas` (Wortsman et al. 2022: they keep much of the zero-shot model's robustness out of
  domain at almost no cost).
Each candidate is scored like train's checkpoints (pipelines.common.validation: dense, and RRF-fused with
BM25 as the shipped system will be) on the validation pairs; the best by `select.metric` is saved as a
plain sentence-transformers folder that quantize / embed / index / publish use. Every score and the
choice go to the report.

    semrec select --pairs data/fashion/pairs --base models/base/all-MiniLM-L6-v2 \
        --finetuned models/fashion/finetuned --out models/fashion/selected --report reports/fashion/select.json
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer

from pipelines.common.atomic import atomic_dir, write_json
from pipelines.common.params import load_section
from pipelines.common.validation import Validation, check_metric


@dataclass(frozen=True)
class SelectParams:
    metric: str  # pipelines.common.validation.NAMES, on the validation pairs
    wise_alphas: tuple[float, ...]
    batch_size: int

    def __post_init__(self) -> None:
        check_metric(self.metric, "select.metric")
        if not all(0.0 < a < 1.0 for a in self.wise_alphas):
            raise ValueError(f"select.wise_alphas must lie strictly between 0 and 1, not {list(self.wise_alphas)}")


def interpolate(base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], alpha: float
                ) -> dict[str, torch.Tensor]:
    """(1 - alpha) * base + alpha * tuned, tensor by tensor; integer buffers (position ids) come from `tuned`."""
    if base.keys() != tuned.keys():
        raise ValueError(f"the two models differ in parameters: {sorted(set(base) ^ set(tuned))[:5]}")
    return {name: torch.lerp(base[name], value, alpha) if value.is_floating_point() else value.clone()
            for name, value in tuned.items()}


def best(scores: Mapping[str, Mapping[str, float]], metric: str) -> str:
    """The candidate with the highest `metric`; ties keep the earliest (the base model comes first)."""
    order = list(scores)
    return max(order, key=lambda name: (scores[name][metric], -order.index(name)))


def select(pairs_dir: Path, base_dir: Path, finetuned_dir: Path, params: SelectParams, out: Path) -> dict[str, Any]:
    """Score every candidate, save the best to `out`; return the report. Every candidate runs in the fine-tuned
    model's module (its max_seq_length included), so they differ in weights only."""
    validation = Validation.load(pairs_dir)
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
    chosen = best(scores, params.metric)
    model.load_state_dict(states[chosen])
    with atomic_dir(out) as tmp:
        model.save(str(tmp))
    return {"chosen": chosen, "metric": params.metric, "validation_queries": len(validation.queries.texts),
            "candidates": scores, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec select", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", required=True, type=Path,
                        help="pairs folder (validation.parquet, documents.parquet)")
    parser.add_argument("--base", required=True, type=Path, help="the base sentence-transformers folder")
    parser.add_argument("--finetuned", required=True, type=Path, help="the train stage's output folder")
    parser.add_argument("--out", required=True, type=Path, help="the chosen encoder (sentence-transformers folder)")
    parser.add_argument("--report", required=True, type=Path, help="select.json: every candidate's scores, the choice")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    section = load_section("select", args.params)
    params = SelectParams(section["metric"], tuple(float(a) for a in section["wise_alphas"]),
                          int(section["batch_size"]))
    report = select(args.pairs, args.base, args.finetuned, params, args.out)
    write_json(report, args.report)
    print(f"select: chose {report['chosen']} ({params.metric} {report['candidates'][report['chosen']][params.metric]})")
    return 0
