"""The evaluate stage's outputs: metrics.json, the TREC runs, report.md (the ablation table) and two PNG plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

from pipelines.common.atomic import atomic_dir, atomic_path, write_json
from pipelines.common.queries import QuerySet
from pipelines.evaluation.params import EvaluateParams
from pipelines.evaluation.run import Evaluation
from pipelines.evaluation.runs import write_runs

SYSTEMS = {
    "popularity": "popularity: the most liked items, no text",
    "bm25": "BM25 (bm25s)",
    "bm25_prior": "BM25 + the popularity prior (its best weight on validation)",
    "zero_shot": "base model, zero-shot (FP32, exact)",
    "finetuned": "fine-tuned, best checkpoint (FP32, exact)",
    "selected": "selected encoder (FP32, exact)",
    "shipped_dense": "shipped dense: selected, INT8 ONNX + sharded HNSW",
    "shipped": "**shipped**: INT8 + HNSW fused with BM25, + prior where chosen (the default search)",
}


def guard_section(guard: dict[str, Any]) -> list[str]:
    """select's out-of-domain guard: each checked candidate minus the base model on other catalogs' validation."""
    if not guard.get("checked"):
        return []
    lines = ["", "Out-of-domain guard, best candidate first: candidate minus base model on other catalogs' validation "
             f"queries ({', '.join(f'{g}: {n}' for g, n in guard['catalogs'].items())}); a candidate passes when no "
             "CI lies below 0.", "", "| candidate | catalog | " + " | ".join(guard["metrics"]) + " | passed |",
             "|---|---|" + "---|" * len(guard["metrics"]) + "---|"]
    for name, check in guard["checked"].items():
        for catalog, diffs in check["difference_vs_base"].items():
            cells = [f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]" for d in diffs.values()]
            lines.append(f"| {name} | {catalog} | " + " | ".join(cells) + f" | {check['passed']} |")
    return lines


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def cell(values: dict[str, float], name: str, signed: bool = False) -> str:
    mean, low, high = values[name], values[f"{name}_ci_low"], values[f"{name}_ci_high"]
    sign = "+" if signed else ""
    return f"{mean:{sign}.4f} [{low:{sign}.4f}, {high:{sign}.4f}]"


def table(scores: dict[str, Any], systems: Sequence[str], names: Sequence[str], signed: bool = False) -> list[str]:
    lines = ["| system | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    return lines + [f"| {SYSTEMS.get(s, s)} | " + " | ".join(cell(scores[s], n, signed) for n in names) + " |"
                    for s in systems if s in scores]


def set_section(title: str, own: dict[str, Any], systems: Sequence[str], names: Sequence[str]) -> list[str]:
    paired = own["paired_vs_shipped"]
    lines = [f"## {title}: {own['queries']} queries ({own['relevant_pairs']} relevant pairs)", "",
             *table(own, systems, names), "", "Shipped minus each system (paired; a CI excluding 0 is significant):",
             "", *table(paired, systems, names, signed=True)]
    wins = [s for s in paired if all(paired[s][f"{n}_ci_low"] > 0 for n in ("recall@10", "mrr@10") if n in names)]
    lines += ["", f"Shipped beats, on Recall@10 and MRR@10 with the CI of the difference above 0: "
              f"{', '.join(wins) or 'none'}."]
    for kind, part in own.get("by_kind", {}).items():
        lines += ["", f"### {kind} queries alone ({part['queries']})", "", *table(part, systems, names), "",
                  "Shipped minus each system:", "", *table(part["paired_vs_shipped"], systems, names, signed=True)]
    return lines


def select_section(chosen: dict[str, Any]) -> list[str]:
    """The select stage's candidates on validation and its guard, or the note that the base model ships as is."""
    if chosen.get("base_only"):
        return ["", "## Encoder selection", "", "The base model, as it is: the catalog was not fine-tuned "
                "(train.enabled is false)."]
    names = list(next(iter(chosen["candidates"].values())))
    lines = ["", f"## Encoder selection on {chosen['validation_queries']} validation queries "
             f"(chose **{chosen['chosen']}** by {chosen['metric']})", "",
             "| candidate | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {name} | " + " | ".join(f"{v:.4f}" for v in values.values()) + " |"
              for name, values in chosen["candidates"].items()]
    return lines + guard_section(chosen.get("guard", {}))


def markdown(metrics: dict[str, Any], sets: Sequence[str], systems: Sequence[str], names: Sequence[str],
             confidence: float) -> str:
    lines = [
        "# Retrieval evaluation",
        "",
        f"{metrics['documents']} documents; HNSW: {metrics['shards']} shard(s), efSearch {metrics['ef_search']} "
        f"(recall@10 against exact search: {metrics['hnsw_recall_at_10_vs_exact']:.4f}); shipped fusion: "
        f"{metrics['fusion']}. Cells: mean [{confidence:.0%} percentile bootstrap CI over queries]. Every ranking "
        "is a TREC run in `runs/` beside its qrels.",
    ]
    for name in sets:
        lines += ["", *set_section(name, metrics[name], systems, names)]
    if "select" in metrics:
        lines += select_section(metrics["select"])
    if "fusion_validation" in metrics:
        fusion = metrics["fusion_validation"]
        lines += ["", f"## Fusion chosen on {fusion['validation_queries']} validation queries ({fusion['metric']})", "",
                  "| fusion | " + fusion["metric"] + " |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in fusion["validation"].items()]
    if "mean_cosine" in metrics:
        lines += ["", "## Mean cosine of relevant (query, item) pairs", "",
                  "| model | relevant pairs | random pairs (scale) |", "|---|---|---|"]
        lines += [f"| {SYSTEMS.get(s, s)} | {c['relevant']:.3f} | {c['random']:.3f} |"
                  for s, c in metrics["mean_cosine"].items()]
    latency = metrics["latency_ms"]
    lines += ["", "## Query latency (batch 1, one thread: INT8 encode, then the default search)", "",
              "| part | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|"]
    lines += [f"| {part} | {latency[f'{part}_p50']:.2f} | {latency[f'{part}_p95']:.2f} | {latency[f'{part}_p99']:.2f} |"
              for part in ("encode", "search", "total")]
    lines += ["", "![recall@k](recall_curves.png)", "", "![latency](latency.png)", ""]
    return "\n".join(lines)


def plot_recall_curves(curves: dict[str, list[float]], ks: Sequence[int], path: Path, set_name: str) -> None:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for system, recalls in curves.items():
        ax.plot(ks, recalls, marker="o", label=SYSTEMS.get(system, system).replace("**", ""))
    ax.set(xscale="log", xlabel="k", ylabel="recall@k", title=f"Recall@k on {set_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_latency(total_ms: np.ndarray, path: Path) -> None:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.hist(total_ms, bins=40)
    for p, style in ((50, "-"), (99, "--")):
        value = np.percentile(total_ms, p)
        ax.axvline(value, color="black", linestyle=style, label=f"p{p} {value:.2f} ms")
    ax.set(xlabel="ms per query (encode + search, batch 1, 1 thread)", ylabel="queries", title="Query latency")
    ax.legend()
    save_figure(fig, path)


def save_figure(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def write_evaluation(evaluation: Evaluation, sets: Mapping[str, QuerySet], params: EvaluateParams, out: Path) -> None:
    """runs/, the plots, metrics.json and report.md of one evaluation, into `out`."""
    with atomic_dir(out / "runs") as runs:
        for name, queries in sets.items():
            write_runs(runs, name, queries, evaluation.ranked[name])
    first = next(iter(sets))
    plot_recall_curves(evaluation.curves, params.curve_ks, out / "recall_curves.png", first)
    plot_latency(evaluation.latency_ms["total"], out / "latency.png")
    metrics = evaluation.metrics
    write_json(metrics, out / "metrics.json")
    write_text(markdown(metrics, list(sets), evaluation.systems, params.metrics, params.bootstrap.confidence)
               + "".join(f"\n**Warning:** {warning}\n" for warning in metrics.get("warnings", [])), out / "report.md")
