"""The evaluate stage's human outputs: report.md (the ablation table) and its two PNG plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

from pipelines.common.atomic import atomic_path

SYSTEMS = {
    "bm25": "BM25 (bm25s)",
    "zero_shot": "zero-shot base model, FP32, exact",
    "fp32": "fine-tuned, FP32 (sentence-transformers), exact",
    "int8_exact": "fine-tuned, INT8 ONNX, exact",
    "int8_hnsw": "fine-tuned, INT8 ONNX + sharded HNSW (shipped)",
}


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def cell(values: dict[str, float], name: str, signed: bool = False) -> str:
    mean, low, high = values[name], values[f"{name}_ci_low"], values[f"{name}_ci_high"]
    sign = "+" if signed else ""
    return f"{mean:{sign}.4f} [{low:{sign}.4f}, {high:{sign}.4f}]"


def markdown(metrics: dict[str, Any], systems: Sequence[str], names: Sequence[str], confidence: float) -> str:
    paired_key = next(key for key in metrics if key.startswith("paired_vs_"))
    reference = paired_key.removeprefix("paired_vs_")
    header = "| system | " + " | ".join(names) + " |\n|---|" + "---|" * len(names)
    lines = [
        "# Retrieval evaluation",
        "",
        f"{metrics['queries']} queries ({metrics['relevant_pairs']} relevant pairs) over "
        f"{metrics['documents']} documents; HNSW: {metrics['shards']} shard(s), efSearch {metrics['ef_search']} "
        f"(recall@10 against exact search on these queries: {metrics['hnsw_recall_at_10_vs_exact']:.4f}). "
        f"Cells: mean [{confidence:.0%} percentile bootstrap CI over queries].",
        "",
        "## Ablation",
        "",
        header,
    ]
    lines += [f"| {SYSTEMS.get(s, s)} | " + " | ".join(cell(metrics[s], n) for n in names) + " |" for s in systems]
    lines += ["", f"## Paired differences: {SYSTEMS.get(reference, reference)} minus each system", "",
              "Same bootstrap resamples for both systems; a CI excluding 0 is a significant difference.", "", header]
    lines += [f"| {SYSTEMS.get(s, s)} | " + " | ".join(cell(metrics[paired_key][s], n, signed=True) for n in names)
              + " |" for s in systems if s != reference]
    if "recall@10" in names:
        lines += ["", f"Recall@10 CIs of {SYSTEMS.get(reference, reference)} vs each system (overlap test):", ""]
        ref = metrics[reference]
        for s in systems:
            if s != reference:
                apart = ref["recall@10_ci_low"] > metrics[s]["recall@10_ci_high"] or \
                    ref["recall@10_ci_high"] < metrics[s]["recall@10_ci_low"]
                lines.append(f"- {SYSTEMS.get(s, s)}: {'non-overlapping' if apart else 'overlapping'}")
    for kind, own in metrics.get("by_kind", {}).items():
        lines += ["", f"## {kind} queries alone ({own['queries']})", "", header]
        lines += [f"| {SYSTEMS.get(s, s)} | " + " | ".join(cell(own[s], n) for n in names) + " |" for s in systems]
    if "mean_cosine" in metrics:
        lines += ["", "## Mean cosine of relevant (query, item) pairs", "",
                  "| model | relevant pairs | random pairs (scale) |", "|---|---|---|"]
        lines += [f"| {SYSTEMS.get(s, s)} | {c['relevant']:.3f} | {c['random']:.3f} |"
                  for s, c in metrics["mean_cosine"].items()]
    latency = metrics["latency_ms"]
    lines += ["", "## Query latency (batch 1, one thread: INT8 encode + sharded HNSW search)", "",
              "| part | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|"]
    lines += [f"| {part} | {latency[f'{part}_p50']:.2f} | {latency[f'{part}_p95']:.2f} | {latency[f'{part}_p99']:.2f} |"
              for part in ("encode", "search", "total")]
    lines += ["", "![recall@k](recall_curves.png)", "", "![latency](latency.png)", ""]
    return "\n".join(lines)


def plot_recall_curves(curves: dict[str, list[float]], ks: Sequence[int], path: Path) -> None:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for system, recalls in curves.items():
        ax.plot(ks, recalls, marker="o", label=SYSTEMS.get(system, system))
    ax.set(xscale="log", xlabel="k", ylabel="recall@k", title="Recall@k on the hard test split")
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
