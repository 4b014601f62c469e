"""Run a command as a subprocess and measure it: wall seconds, CPU seconds and the peak RSS of its
whole process tree (worker pools included; RSS sampled every 0.2 s with psutil). CPU seconds (user +
system of the tree, from getrusage of waited-for children) do not depend on what else the shared
machine runs; wall seconds do."""

from __future__ import annotations

import json
import resource
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]


def sample_peak(process: psutil.Process, stop: threading.Event, peak: list[int]) -> None:
    """Sample the RSS of `process` and its children until `stop`; keep the largest sum."""
    while not stop.is_set():
        try:
            tree = [process, *process.children(recursive=True)]
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        stop.wait(0.2)


def run(argv: list[str], log: Path, nice: int = 0) -> dict[str, Any]:
    """Run `argv` (output to `log`); seconds, peak RSS MB of the tree, exit code, and the log's tail on failure."""
    start, peak, stop = time.perf_counter(), [0], threading.Event()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("w") as out:
        child = subprocess.Popen(["nice", "-n", str(nice), *argv], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        sampler = threading.Thread(target=sample_peak, args=(psutil.Process(child.pid), stop, peak), daemon=True)
        sampler.start()
        code = child.wait()
    stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result = {"command": " ".join(argv), "seconds": round(time.perf_counter() - start, 1),
              "cpu_seconds": round(cpu, 1), "peak_rss_mb": round(peak[0] / 2**20), "exit": code}
    if code:
        result["error"] = log.read_text()[-2000:]
    return result


def write_results(out: Path, name: str, result: Mapping[str, Any], report: str) -> None:
    """A bench's results in `out`: `<name>.json` (the numbers) and `<name>.md` (the report)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(report, encoding="utf-8")
