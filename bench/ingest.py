"""Ingest at scale: rows/s and peak RSS of both engines side by side, and whether their outputs are identical.

Inputs (bench/amazon_category.py): Amazon Reviews 2023 categories of 1M, 2.5M and 10M reviews
(items in the paper's proportion, 826k per 2.5M reviews; 40 malformed lines each), read by the
`amazon2023` plug-in from JSONL: every step, language ID (CLD2) included. "ratings only": the same
reviews' (user, item, rating, timestamp) as Parquet through the `generic` plug-in, no text: the
tokens and language rules skip them (everything but language ID and JSON decoding). Each run is
`semrec ingest` in a subprocess; peak RSS is its whole process tree (the worker pool included).
Beam runs on FnApiRunner with 1 and 2 worker processes (`--direct_num_workers N
--direct_running_mode multi_processing`) on the sizes in --beam-sizes, and its outputs are compared
with Polars' on the same input (all three tables and counts.json).

    nohup nice -n 19 python bench/ingest.py > ingest.log &      # 1M, 2.5M, 10M; Beam at 1M
    python bench/ingest.py --sizes 100000 --beam-sizes 100000     # a quick smoke run
Results: bench/results/ingest.{json,md}, rewritten after every run. Work files: bench/results/tmp/ingest/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from amazon_category import CATEGORY, generate  # noqa: E402
from measure import run  # noqa: E402

RESULTS = Path(__file__).parent / "results"
WORK = RESULTS / "tmp" / "ingest"
FILTERS = {"min_rating": 4, "min_tokens": 5, "language": "en", "min_user_positives": 3}
ITEMS_PER_REVIEW = 826_000 / 2_500_000
TABLES = ("items", "interactions", "quarantine")


def inputs(size: int) -> Path:
    """The category of `size` reviews (JSONL) and its ratings as Parquet, written once."""
    raw = WORK / f"n{size}"
    if not (raw / "done").is_file():
        generate(size, round(size * ITEMS_PER_REVIEW), raw)
        (raw / "done").touch()
    return raw


def params(raw: Path, workers: int) -> Path:
    columns = {"item_id": "parent_asin", "rating": "rating", "user_id": "user_id", "timestamp": "timestamp"}
    path = raw / "params.yaml"
    ingest_section = {"engine": "polars", "workers": workers, "filters": FILTERS}
    path.write_text(yaml.safe_dump({"ingest": ingest_section, "catalogs": {
        "reviews": {"source": str(raw), "ingest": {"plugin": "amazon2023", "category": CATEGORY}},
        "ratings": {"source": str(raw), "ingest": {
            "plugin": "generic", "interactions": {"path": "ratings.parquet", "columns": columns},
            "items": {"path": "products.parquet", "columns": {"item_id": "parent_asin", "title": "title"}}}},
    }}))
    return path


def ingest(raw: Path, catalog: str, engine: str, workers: int) -> dict[str, Any]:
    out = raw / f"out-{catalog}-{engine}-{workers}"
    argv = [sys.executable, "-m", "pipelines.cli", "ingest", "--catalog", catalog, "--source", str(raw), "--out",
            str(out), "--params", str(params(raw, workers)), "--engine", engine]
    if engine == "beam":
        argv += ["--direct_num_workers", str(workers), "--direct_running_mode", "multi_processing"]
    result = run(argv, raw / f"{out.name}.log")
    if result["exit"] == 0:
        counts = json.loads((out / "counts.json").read_text())
        rows = counts["interactions"]["raw"] + counts["items"]["raw"]
        result.update(rows=rows, rows_per_s=round(rows / result["seconds"]),
                      rows_per_cpu_s=round(rows / max(result["cpu_seconds"], 1e-9)), counts=counts, out=str(out))
    return {"input": catalog, "engine": engine, "workers": workers, **result}


def identical(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same three tables (rows, order, values) and the same counts."""
    if a["exit"] or b["exit"] or a["counts"] != b["counts"]:
        return False
    return all(pl.read_parquet(Path(a["out"]) / f"{t}.parquet").equals(pl.read_parquet(Path(b["out"]) / f"{t}.parquet"))
               for t in TABLES)


def report(result: dict[str, Any]) -> str:
    lines = [
        "# Ingest at scale: Polars and Beam side by side",
        "",
        f"Command: `{result['command']}`. Input: Amazon Reviews 2023 categories written by "
        "bench/amazon_category.py (JSONL, 40 malformed lines each; items 826k per 2.5M reviews) through the "
        "`amazon2023` plug-in; \"ratings only\": the same reviews' user, item, rating and timestamp as Parquet "
        "through the `generic` plug-in (no text: no JSON decoding, no language ID). rows = reviews + items "
        "read. Peak RSS: the whole process tree (workers included). Goals (issue 15): Polars peak RSS <= 1.5 GB "
        "at 2.5M reviews and within +20% of that at 10M; >= 100k rows/s with language ID (goal 200k), >= 1M "
        f"rows/s without text. Machine: {result['cpus']} cores (load average {result['load_average']} at the "
        "start): wall seconds measure what other jobs left of the machine; CPU seconds (the whole process tree) "
        "do not depend on it.",
        "",
        "| input | reviews | engine | workers | rows | seconds | rows/s | CPU s | rows per CPU s | peak RSS MB | "
        "kept reviews | exit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        kept = r["counts"]["interactions"]["kept"] if "counts" in r else ""
        lines.append(f"| {r['input']} | {r['reviews']:,} | {r['engine']} | {r['workers']} | {r.get('rows', 0):,} | "
                     f"{r['seconds']} | {r.get('rows_per_s', 0):,} | {r.get('cpu_seconds', '')} | "
                     f"{r.get('rows_per_cpu_s', 0):,} | {r['peak_rss_mb']:,} | {kept:,} | {r['exit']} |")
    lines += ["", "Beam output vs Polars output on the same input (all three tables and counts.json):", ""]
    lines += [f"- {c['reviews']:,} reviews, Beam with {c['workers']} worker(s): identical = {c['identical']}"
              for c in result["comparisons"]]
    for r in result["runs"][:1]:
        if "counts" in r:
            counts = r["counts"]
            lines += ["", f"Steps of the {r['reviews']:,}-review category (reviews):", "", "| step | rows |",
                      "|---|---|", *(f"| {step} | {n:,} |" for step, n in counts["interactions"]["after"].items()),
                      "", f"Reasons: {counts['interactions']['reasons']}; items: {counts['items']['reasons']}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 2_500_000, 10_000_000])
    parser.add_argument("--beam-sizes", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--workers", type=int, default=2, help="Polars engine worker processes")
    args = parser.parse_args()
    state = WORK / "state.json"  # finished runs survive a restart: a run already there is not repeated
    result: dict[str, Any] = json.loads(state.read_text()) if state.is_file() else {
        "command": "python bench/ingest.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
        "runs": [], "comparisons": []}
    result["command"] = "python bench/ingest.py " + " ".join(sys.argv[1:])
    result["load_average"] = [round(x, 1) for x in os.getloadavg()]

    def done(size: int, catalog: str, engine: str, workers: int) -> dict[str, Any] | None:
        return next((r for r in result["runs"] if (r["reviews"], r["input"], r["engine"], r["workers"]) ==
                     (size, catalog, engine, workers) and r["exit"] == 0), None)

    def measure(size: int, raw: Path, catalog: str, engine: str, workers: int) -> dict[str, Any]:
        run = done(size, catalog, engine, workers)
        if run is None:
            run = {"reviews": size, **ingest(raw, catalog, engine, workers)}
            result["runs"].append(run)
            save()
        return run

    def save() -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(result))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "ingest.json").write_text(json.dumps(
            {**result, "runs": [{k: v for k, v in r.items() if k not in ("out", "error")} | (
                {"error": r["error"]} if "error" in r else {}) for r in result["runs"]]}, indent=2) + "\n")
        (RESULTS / "ingest.md").write_text(report(result))

    for size in args.sizes:
        raw = inputs(size)
        polars = measure(size, raw, "reviews", "polars", args.workers)
        measure(size, raw, "ratings", "polars", args.workers)
        for workers in (1, 2) if size in args.beam_sizes else ():
            beam = measure(size, raw, "reviews", "beam", workers)
            result["comparisons"] = [c for c in result["comparisons"]
                                     if (c["reviews"], c["workers"]) != (size, workers)]
            result["comparisons"].append({"reviews": size, "workers": workers, "identical": identical(polars, beam)})
            save()
    print(report(result))


if __name__ == "__main__":
    main()
