"""Ingest and embed on Dask vs the local process pool, side by side: rows/s, docs/s and the Dask overhead.

Three executors (pipelines/common/executor.py) at 1 and 2 workers:
- `local`: the process pool (1 worker: the stage's own process, no pool);
- `local-cluster`: a Dask LocalCluster started and closed by each run (its start is in the time);
- `dask`: a running cluster, a `dask scheduler` and `dask worker --nworkers N --nthreads 1` processes on
  127.0.0.1 that this bench starts before the runs (as a cluster would already be up), intermediates in a
  local work folder.
Ingest: `semrec ingest` of the 1M-review Amazon category (bench/amazon_category.py, the input of
bench/ingest.py: JSONL, every rule, language ID included). Embed: `semrec embed` of the first --docs
item documents (~150-220 characters) the first ingest run kept, with an INT8 encoder, one ONNX thread per
worker. Each run is a subprocess; the kinds alternate within each round, their order rotated every round,
so that what else the shared machine runs falls on all of them alike, and the median of the rounds is
reported. Outputs are checked identical across kinds (md5 of every file).
CPU seconds: the run's process tree, plus for `dask` what the scheduler and workers used during the run
(they are not its children): unlike wall seconds, they do not depend on what else the machine runs. Peak
RSS: the run's process tree (`dask`: the driver only).

    nohup nice -n 10 python bench/cluster.py --encoder models/fashion/onnx > cluster.log &
Results: bench/results/cluster.{json,md}. Work files: bench/results/tmp/cluster/.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from amazon_category import CATEGORY  # noqa: E402
from ingest import ITEMS_PER_REVIEW, inputs  # noqa: E402
from measure import ROOT, run, write_results  # noqa: E402

from pipelines.common.executor import TRIM_THRESHOLD  # noqa: E402

RESULTS = Path(__file__).parent / "results"
WORK = RESULTS / "tmp" / "cluster"
KINDS = ("local", "local-cluster", "dask")
# the README's worker config, from the key local-cluster sets (one source of truth for it)
WORKER_CONFIG = functools.reduce(lambda value, key: {key: value}, reversed(TRIM_THRESHOLD.split(".")), None)
FILTERS = {"min_rating": 4, "min_tokens": 5, "language": "en", "min_user_positives": 3}


class DaskProcesses:
    """A scheduler and `workers` single-threaded workers, each command in its own process group."""

    def __init__(self, workers: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        config = WORK / "dask-config"  # the README's worker config: glibc keeps its own trim threshold
        config.mkdir(parents=True, exist_ok=True)
        (config / "semrec.yaml").write_text(yaml.safe_dump(WORKER_CONFIG))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "POLARS_MAX_THREADS": "1", "DASK_CONFIG": str(config)}
        dask = [sys.executable, "-m", "dask"]
        log = (WORK / "dask.log").open("ab")
        self.processes = [subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True) for command in (
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1], "--no-dashboard"],
            [*dask, "worker", self.address, "--nworkers", str(workers), "--nthreads", "1", "--no-dashboard",
             "--local-directory", str(WORK / "dask")])]
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)

    def cpu_seconds(self) -> float:
        """User + system seconds of the scheduler, the workers and their nannies so far."""
        total = 0.0
        for process in self.processes:
            tree = psutil.Process(process.pid)
            for member in (tree, *tree.children(recursive=True)):
                times = member.cpu_times()
                total += times.user + times.system
        return total

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def params(folder: Path, kind: str, workers: int, address: str | None, raw: Path | None = None) -> Path:
    path = folder / f"params-{kind}-{workers}.yaml"
    executor = {"kind": kind, "address": address, "work_url": str(WORK / "work") if kind == "dask" else None}
    path.write_text(yaml.safe_dump({
        "catalogs": {"reviews": {"source": str(raw or folder), "ingest": {"plugin": "amazon2023",
                                                                         "category": CATEGORY}}},
        "ingest": {"engine": "polars", "workers": workers, "filters": FILTERS},
        "embed": {"variant": "int8", "batch_size": 64, "threads": 1, "workers": workers},
        "executor": executor}))
    return path


def md5s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def ingest(raw: Path, kind: str, workers: int, address: str | None, round_: int) -> dict[str, Any]:
    out = WORK / f"ingest-{kind}-{workers}"
    argv = [sys.executable, "-m", "pipelines.cli", "ingest", "--catalog", "reviews", "--source", str(raw), "--out",
            str(out), "--params", str(params(WORK, kind, workers, address, raw))]
    result = run(argv, WORK / f"{out.name}.log")
    if result["exit"] == 0:
        counts = json.loads((out / "counts.json").read_text())
        rows = counts["interactions"]["raw"] + counts["items"]["raw"]
        result.update(rows=rows, rows_per_s=round(rows / result["seconds"]), md5=md5s(out))
    return {"stage": "ingest", "kind": kind, "workers": workers, "round": round_, **result}


def embed(documents: Path, encoder: Path, kind: str, workers: int, address: str | None, round_: int) -> dict[str, Any]:
    out = WORK / f"embed-{kind}-{workers}"
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pipelines.cli", "embed", "--documents", str(documents), "--encoder", str(encoder),
            "--out", str(out / "embeddings.npy"), "--report", str(out / "embed.json"),
            "--params", str(params(WORK, kind, workers, address))]
    result = run(argv, WORK / f"{out.name}.log")
    if result["exit"] == 0:
        docs = pq.read_metadata(documents).num_rows
        result.update(docs=docs, docs_per_s=round(docs / result["seconds"], 1),
                      md5={"embeddings.npy": md5s(out)["embeddings.npy"]})
    return {"stage": "embed", "kind": kind, "workers": workers, "round": round_, **result}


def summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median seconds per (stage, workers, kind), its rate, and the overhead vs `local` at the same workers."""
    rows = []
    for stage, rate in (("ingest", "rows"), ("embed", "docs")):
        for workers in (2, 1):
            medians, cpu = {}, {}
            for kind in KINDS:
                mine = [r for r in runs if (r["stage"], r["workers"], r["kind"]) == (stage, workers, kind)
                        and r["exit"] == 0]
                if mine:
                    medians[kind] = round(statistics.median(r["seconds"] for r in mine), 2)
                    cpu[kind] = round(statistics.median(r["cpu_seconds"] for r in mine), 2)
                    rows.append({"stage": stage, "workers": workers, "kind": kind, "runs": len(mine),
                                 "median_s": medians[kind], "seconds": [r["seconds"] for r in mine],
                                 "median_cpu_s": cpu[kind], "cpu_seconds": [r["cpu_seconds"] for r in mine],
                                 f"{rate}_per_s": round(mine[0][rate] / medians[kind], 1),
                                 "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                                 "identical_to_local": all(r["md5"] == next(
                                     x["md5"] for x in runs if (x["stage"], x["kind"]) == (stage, "local")
                                     and x["exit"] == 0) for r in mine)})
                    if "local" in medians:
                        rows[-1]["overhead_vs_local"] = round(medians[kind] / medians["local"] - 1, 3)
                        rows[-1]["cpu_overhead_vs_local"] = round(cpu[kind] / cpu["local"] - 1, 3)
    return rows


def report(result: dict[str, Any]) -> str:
    lines = [
        "# Ingest and embed on Dask vs the local process pool",
        "",
        f"Command: `{result['command']}`. Ingest: the {result['reviews']:,}-review Amazon category of "
        "bench/amazon_category.py (JSONL, every rule, language ID included; rows = reviews + items read). Embed: "
        f"the first {result['docs']:,} item documents of that category, INT8 encoder `{result['encoder']}`, batch "
        "size 64, one ONNX thread per worker. `local`: the process pool (1 worker: the stage's own process); "
        "`local-cluster`: a Dask LocalCluster started and closed within each run; `dask`: a `dask scheduler` + "
        "`dask worker --nthreads 1` processes on 127.0.0.1 started before the runs. Each cell: the median of "
        f"the rounds run (all listed; {result['rounds']} planned), the kinds alternating within a round, their order "
        f"rotated every round. Machine: {result['cpus']} cores shared with other jobs (load average "
        f"{result['load_average']} at the start, {result['load_average_end']} at the end): wall seconds measure "
        "what the other jobs left. Peak RSS: the run's process tree (`dask`: the "
        "driver only).",
        "",
        "| stage | workers | executor | seconds (median; all) | rate | overhead vs local | CPU s (median; all) | "
        "CPU overhead vs local | peak RSS MB | output identical to local |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["summary"]:
        rate = f"{row['rows_per_s']:,.0f} rows/s" if "rows_per_s" in row else f"{row['docs_per_s']:,.1f} docs/s"
        overhead = f"{row['overhead_vs_local']:+.1%}" if "overhead_vs_local" in row else ""
        cpu_overhead = f"{row['cpu_overhead_vs_local']:+.1%}" if "cpu_overhead_vs_local" in row else ""
        lines.append(f"| {row['stage']} | {row['workers']} | {row['kind']} | {row['median_s']} "
                     f"({', '.join(map(str, row['seconds']))}) | {rate} | {overhead} | {row['median_cpu_s']} "
                     f"({', '.join(map(str, row['cpu_seconds']))}) | {cpu_overhead} | {row['peak_rss_mb']:,} | "
                     f"{row['identical_to_local']} |")
    return "\n".join(lines) + "\n"


def record(result: dict[str, Any], outcome: dict[str, Any], cluster_cpu_s: float) -> None:
    """Add a run and rewrite the results (a bench stopped early keeps what it measured)."""
    outcome["cpu_seconds"] = round(outcome["cpu_seconds"] + cluster_cpu_s, 1)
    print(json.dumps({k: v for k, v in outcome.items() if k not in ("md5", "error")}), flush=True)
    result["runs"].append(outcome)
    result["load_average_end"] = [round(x, 1) for x in os.getloadavg()]
    result["summary"] = summary(result["runs"])
    write_results(RESULTS, "cluster", result, report(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=1_000_000)
    parser.add_argument("--docs", type=int, default=4096, help="item documents embedded")
    parser.add_argument("--encoder", type=Path, default=Path("models/fashion/onnx"), help="INT8 ONNX encoder folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 1], choices=[1, 2])
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    raw = inputs(args.reviews)
    documents = WORK / "documents.parquet"
    documents.unlink(missing_ok=True)
    result: dict[str, Any] = {
        "command": "python bench/cluster.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
        "reviews": args.reviews, "items": round(args.reviews * ITEMS_PER_REVIEW), "docs": args.docs,
        "encoder": str(args.encoder), "rounds": args.rounds,
        "load_average": [round(x, 1) for x in os.getloadavg()], "runs": []}
    for workers in args.workers:
        cluster = DaskProcesses(workers)
        try:
            for round_ in range(args.rounds):
                for kind in KINDS[round_ % 3:] + KINDS[:round_ % 3]:  # no kind always runs after the same one
                    address = cluster.address if kind == "dask" else None
                    before = cluster.cpu_seconds()
                    outcome = ingest(raw, kind, workers, address, round_)
                    record(result, outcome, cluster.cpu_seconds() - before if kind == "dask" else 0.0)
                    if not documents.is_file():  # from the first run's items
                        items = pq.read_table(WORK / f"ingest-{kind}-{workers}" / "items.parquet",
                                              columns=["item_id", "document"])
                        pq.write_table(items.slice(0, args.docs), documents)
                    before = cluster.cpu_seconds()
                    outcome = embed(documents, args.encoder, kind, workers, address, round_)
                    record(result, outcome, cluster.cpu_seconds() - before if kind == "dask" else 0.0)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
