"""`semrec` command: one subcommand per stage, each implemented by a module's `main(argv)`.

Modules are imported only when their subcommand runs, so `semrec query` never loads torch or Beam.
"""

from __future__ import annotations

import importlib
import os
import sys

# Models load from local folders only; without these, trainer, model-card and reload code call the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

COMMANDS: dict[str, tuple[str, str]] = {
    "fetch": ("pipelines.fetch", "download the pinned real datasets and models, verify sha256"),
    "ingest": ("pipelines.ingest.stage", "filter, dedup and join a catalog into typed Parquet (Polars or Beam)"),
    "pairs": ("pipelines.pairs", "build (query, item) pairs and the leakage-free train/test split"),
    "train": ("pipelines.train", "fine-tune the bi-encoder with MultipleNegativesRankingLoss"),
    "quantize": ("pipelines.quantize", "export the encoder to ONNX and quantize it to INT8"),
    "embed": ("pipelines.embed", "embed the catalog with the INT8 encoder"),
    "index": ("pipelines.index", "build sharded FAISS HNSW indexes and the metadata cache"),
    "evaluate": ("pipelines.evaluate", "retrieval metrics vs baselines, ablations, bootstrap CIs"),
    "publish": ("pipelines.publish", "publish a versioned snapshot and move the LATEST pointer"),
    "describe": ("pipelines.movies.describe", "LLM-enriched movie descriptions"),
    "synth": ("pipelines.movies.synth", "synthetic conversational movie queries"),
    "intent": ("pipelines.movies.intent", "intent + entity model for conversational queries"),
    "llm": ("pipelines.movies.llm", "dequantize the small GGUF LM into a plain safetensors folder"),
    "ask-eval": ("pipelines.movies.ask_eval", "Recall@10 of conversational queries through ask vs plain search"),
    "query": ("serving.cli", "query a published snapshot"),
    "ask": ("serving.ask_cli", "ask a published snapshot a conversational request (movies)"),
    "serve": ("serving.http", "serve a published snapshot over HTTP, with the A/B dashboard at /"),
    "demo": ("pipelines.demo", "the dashboard with PyTorch FP32 + exact search beside the snapshot (the paper's A/B)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return "usage: semrec <command> [options]\n\ncommands:\n" + "\n".join(lines) + (
        "\n\n`semrec <command> --help` describes a command's options."
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"semrec: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
