"""`semrec` command: one subcommand per stage, each implemented by a module's `main(argv)`.

Modules are imported only when their subcommand runs, so `semrec query` never loads torch or Beam.
Every failure ends in one line on stderr: an expected one (serving.errors) with its exit code, anything
else with exit 1 and its traceback only at `--log-level debug`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import sys

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Models load from local folders only; without these, trainer, model-card and reload code call the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

COMMANDS: dict[str, tuple[str, str]] = {
    "fetch": ("pipelines.fetch", "download the pinned real datasets and models, verify sha256"),
    "catalog": ("pipelines.catalog_check", "`catalog check <key>`: try a catalog's mapping on the first rows of its files"),
    "ingest": ("pipelines.ingest.stage", "filter, dedup and join a catalog into typed Parquet (Polars or Beam)"),
    "pairs": ("pipelines.pairs", "build (query, item) pairs and the leakage-free train/test split"),
    "guard-set": ("pipelines.guard_set", "copy a catalog's validation set beside another's pairs for select's guard"),
    "pseudo": ("pipelines.movies.pseudo", "text-grounded movie pseudo-queries (templates, LM, inverse cloze)"),
    "train": ("pipelines.train", "fine-tune the bi-encoder with MultipleNegativesRankingLoss, best checkpoint"),
    "select": ("pipelines.select", "choose the shipped encoder on validation: base, fine-tuned, WiSE-FT mixes"),
    "quantize": ("pipelines.quantize", "export the encoder to ONNX and quantize it to INT8"),
    "embed": ("pipelines.embed", "embed the catalog with the INT8 encoder"),
    "index": ("pipelines.index", "build sharded FAISS HNSW indexes and the metadata cache"),
    "fusion": ("pipelines.fusion", "choose dense / weighted hybrid / RRF with BM25 on validation"),
    "evaluate": ("pipelines.evaluate", "every system on every test set, paired bootstrap CIs, TREC runs"),
    "cross-catalog": ("pipelines.cross_catalog", "out-of-domain guard: each selected encoder on the other catalog"),
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
    return "semrec [--version] [--log-level LEVEL] <command> [options]\n\ncommands:\n" + "\n".join(lines) + (
        "\n\n`semrec <command> --help` describes a command's options. Exit codes: 0 ok, 1 refused (quality gate, "
        "LATEST moved), 2 usage, 3 not found, 4 verification failed, 5 storage or credentials."
    )


def version() -> str:
    try:
        return importlib.metadata.version("semrec")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec", usage=usage(), add_help=False)
    parser.add_argument("--version", action="store_true")
    parser.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("command", nargs="?")
    parser.add_argument("rest", nargs=argparse.REMAINDER)  # the command's own options
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(f"semrec {version()}")
        return 0
    if args.help or args.command is None:
        print("usage: " + usage())
        return 0
    if args.command not in COMMANDS:
        print(f"semrec: unknown command {args.command!r}\n\nusage: {usage()}", file=sys.stderr)
        return 2
    if args.log_level:  # else each command keeps its own default (stages: INFO; query: warnings only)
        logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger().setLevel(args.log_level)  # the stages' own basicConfig calls are no-ops from here
    try:
        module = importlib.import_module(COMMANDS[args.command][0])
    except ModuleNotFoundError as err:  # a base install (the reader) runs `query` only
        if (err.name or "").split(".")[0] in {"pipelines", "serving"}:
            raise
        extra = "http" if args.command == "serve" else "pipelines"
        print(f"semrec {args.command}: needs {err.name!r}, which this install lacks; "
              f"pip install 'semrec[{extra}]'", file=sys.stderr)
        return 2
    try:
        return module.main(args.rest) or 0
    except Exception as err:  # the one error boundary of every command
        from serving.errors import UNEXPECTED, exit_code, one_line

        code = exit_code(err)
        if code is None:
            logging.getLogger("semrec").debug("%s failed", args.command, exc_info=err)
            code = UNEXPECTED
        print(one_line(args.command, err, code), file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
