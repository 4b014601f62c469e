"""Soak: publishers, rollbacks, kill -9s and readers together for an hour (not in CI).

Two snapshots that answer differently (A: the tiny test catalog, tests/snapshot_fixture.py; B: the same
items with their documents rotated by one, so every query ranks other items first) are published by
the real `semrec publish` (subprocesses, retention keep 3, gc grace 3 min) into a local root:
- publisher 1 republishes every 30 s, alternating A and B; 10 of its runs are killed with SIGKILL at a
  random point, one due every tenth of the run and tried on each publish until it lands in flight;
- publisher 2 races it every 45 s with the variant publisher 1 did not publish last;
- `semrec publish rollback --to <the newest snapshot that is not live>` every 5 minutes;
- after every step, LATEST must verify (every file downloaded and checked against its sha256);
- 8 reader threads share one `Reader` (polling LATEST every second) and `semrec serve` (polling every
  second) is queried by 4 client threads (POST /search, GET /items/{id}/similar), without pause. The
  HTTP clients run in a process of their own, check their answers there and send a tally here each second,
  and this process records a query's latency into a preallocated buffer: so that this process's RSS
  is the Reader's, not the harness's.
Every answer is checked against the snapshot id it reports: a snapshot's id ends in the digest of its
files, so it names the variant, and each variant's answers were computed up front.
Recorded: queries, failures, wrong-snapshot answers, p50/p99 latency per minute, RSS and open file
descriptors of the reader process (this one), the server and the HTTP client process every 10 s, with
the RSS slope after the warm-up (a leak shows as a slope).

    nice -n 19 python bench/soak.py                 # 60 minutes
    python bench/soak.py --minutes 3                 # a smoke run
Results: bench/results/soak.{json,md} (rewritten every minute). Work files: bench/results/tmp/soak/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from snapshot_fixture import ITEMS, PUBLISH_PARAMS, write_inputs  # noqa: E402

from serving.cache import pull  # noqa: E402
from serving.reader import Reader  # noqa: E402
from serving.store import Store  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CATALOG = "soak"
QUERIES = [("red dress", {}), ("blue denim jeans", {}), ("warm wool coat", {}), ("linen sku77", {}),
           ("white summer dress", {"creator": "Dora"}), ("black jacket", {"categories": ["Jackets"]}),
           ("silk blouse party", {"year_min": 2010, "price_max": 150.0}), ("green shirt", {})]
SIMILAR = ["i01", "i05", "i09"]
K = 5
HTTP_CLIENTS = 4
KILLS = 10  # kill -9s of publisher 1 in the run
WARM_UP_FRACTION = 1 / 6  # RSS slope over the rest (10 of 60 minutes)
PROCESSES = ("reader", "server", "http_clients")  # sampled every 10 s; the first two are under test


def rotated(rows: list[tuple]) -> list[tuple]:
    """Variant B: each item takes the next item's document, so the rankings differ from A's."""
    documents = [row[-1] for row in rows]
    return [(*row[:-1], documents[(i + 1) % len(rows)]) for i, row in enumerate(rows)]


def variant_of(snapshot_id: str) -> str:
    return snapshot_id.rsplit("-", 1)[1]  # the digest of the snapshot's files


class Latencies:
    """One window's latencies per source, in buffers allocated once: recording a query allocates nothing."""

    def __init__(self, sources: tuple[str, ...] = ("reader", "http"), capacity: int = 1 << 20):
        self.buffers = {source: np.empty(capacity) for source in sources}
        self.filled = dict.fromkeys(sources, 0)

    def add(self, source: str, seconds: float) -> None:
        """Record one latency (beyond the capacity, the rest of the window's are dropped)."""
        filled = self.filled[source]
        if filled < len(self.buffers[source]):
            self.buffers[source][filled] = seconds
            self.filled[source] = filled + 1

    def extend(self, source: str, seconds: np.ndarray) -> None:
        start = self.filled[source]
        end = min(start + len(seconds), len(self.buffers[source]))
        self.buffers[source][start:end] = seconds[:end - start]
        self.filled[source] = end

    def take(self) -> dict[str, np.ndarray]:
        """The window's latencies (copies), and an empty window."""
        out = {source: buffer[:self.filled[source]].copy() for source, buffer in self.buffers.items()}
        self.filled = dict.fromkeys(self.filled, 0)
        return out


class HttpClients:
    """The HTTP client threads (run in a process of their own by `http_clients`). Each answer is checked
    here against the answers of the variant its snapshot id names; each second the tally (counts, the
    latencies, the first failures) goes to the soak."""

    def __init__(self, port: int, expected: dict[str, dict[str, list[str]]], batches: multiprocessing.Queue,
                 stop: threading.Event):
        self.port, self.expected, self.batches, self.stop = port, expected, batches, stop
        self.counts: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.examples: list[str] = []
        self.lock = threading.Lock()

    def note(self, snapshot_id: str, key: str, ids: list[str] | None, seconds: float, error: str | None) -> None:
        with self.lock:
            self.counts["http_queries"] += 1
            if error is not None:
                self.counts["http_failures"] += 1
                self.examples.append(f"http {key}: {error}")
                return
            self.latencies.append(seconds)
            expected = self.expected.get(variant_of(snapshot_id), {}).get(key)
            if ids != expected:
                self.counts["http_wrong_snapshot"] += 1
                self.examples.append(f"http {key}: {ids} from {snapshot_id}, expected {expected}")

    def resent(self, why: str) -> None:
        with self.lock:
            self.counts["http_resent"] += 1
            self.examples.append(f"http resent after {why}")

    def flush(self) -> None:
        with self.lock:
            batch = (dict(self.counts), np.array(self.latencies), self.examples[:30])
            self.counts, self.latencies, self.examples = Counter(), [], []
        if batch[0]:
            self.batches.put(batch)

    def loop(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as client:
            while not self.stop.is_set():
                began = time.perf_counter()
                if rng.random() < 0.25:
                    item = rng.choice(SIMILAR)
                    key, request = f"s:{item}", lambda: client.get(f"/items/{item}/similar", params={"k": K})
                else:
                    text, filters = rng.choice(QUERIES)
                    key = f"q:{text}|{json.dumps(filters)}"
                    body = {"text": text, "k": K, **({"filters": filters} if filters else {})}
                    request = lambda: client.post("/search", json=body)  # noqa: E731
                try:
                    response = self.send(request)
                    if response.status_code != 200:
                        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                    answer = response.json()
                except Exception as err:  # noqa: BLE001 - every failure is counted
                    self.note("", key, None, 0.0, f"{type(err).__name__}: {err}")
                    continue
                self.note(answer["snapshot_id"], key, [i["item_id"] for i in answer["items"]],
                          time.perf_counter() - began, None)

    def send(self, request: Callable[[], httpx.Response]) -> httpx.Response:
        """Send a (read-only) request, and once more when the kept-alive connection it went out on was
        closed under it: uvicorn closes a connection idle for 5 s, and a client starved that long can
        write into it as it closes (ECONNRESET). Browsers and urllib3 resend such a request too; each
        resend is counted (`http_resent`), and a second failure is a failed query."""
        try:
            return request()
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as err:
            self.resent(f"{type(err).__name__}: {err}")
            return request()


def http_clients(port: int, clients: int, expected: dict[str, dict[str, list[str]]], batches: multiprocessing.Queue,
                 stopped: Any) -> None:
    """Query `semrec serve` from `clients` threads until `stopped` is set, then send None."""
    stop = threading.Event()
    sender = HttpClients(port, expected, batches, stop)
    threads = [threading.Thread(target=sender.loop, args=(100 + i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    while not stopped.wait(1):
        sender.flush()
    stop.set()
    for thread in threads:
        thread.join(60)
    sender.flush()
    batches.put(None)


class Soak:
    def __init__(self, work: Path, minutes: float, seed: int):
        self.work, self.minutes, self.rng = work, minutes, random.Random(seed)
        self.root = str(work / "published")
        self.started = time.monotonic()
        self.deadline = self.started + minutes * 60
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # bm25s numbers its vocabulary in set order: a fixed hash seed makes a variant's files, and so the digest
        # ending its snapshot ids, the same in every publish
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(work / "staging"), "PYTHONHASHSEED": "0"}
        (work / "staging").mkdir(parents=True, exist_ok=True)
        self.counts: Counter[str] = Counter()
        self.examples: list[str] = []
        self.windows: list[dict[str, Any]] = []
        self.latencies = Latencies()
        self.window_counts: Counter[str] = Counter()
        self.samples: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.publish_seconds: list[float] = []
        self.inputs: dict[str, dict[str, Path]] = {}
        self.expected: dict[str, dict[str, list[str]]] = {}
        self.server: subprocess.Popen | None = None
        self.port = 0
        self.last_variant = "A"  # what publisher 1 published last: publisher 2 publishes the other

    # --- setup -----------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Both variants' inputs, a params file with retention and a short gc grace, each variant's answers."""
        for name, rows in (("A", ITEMS), ("B", rotated(ITEMS))):
            self.inputs[name] = write_inputs(self.work / f"inputs-{name}", rows=rows)
        params = {**PUBLISH_PARAMS, "publish": {**PUBLISH_PARAMS["publish"], "keep": 3, "gc_grace_hours": 0.05}}
        (self.work / "params.yaml").write_text(yaml.safe_dump(params))
        for name in self.inputs:
            scratch = self.work / f"scratch-{name}"
            self.must_publish(name, str(scratch))
            reader = Reader.open(str(scratch), CATALOG, cache_dir=self.work / "scratch-cache")
            self.expected[variant_of(reader.manifest.snapshot_id)] = self.answers(reader.snapshot)
            self.counts[f"variant_{name}"] = 0
        assert len(self.expected) == 2, "the two variants must differ in content"
        self.must_publish("A", self.root)

    def must_publish(self, variant: str, root: str) -> None:
        process = self.publish(variant, root)
        _, err = process.communicate()
        if process.returncode:
            raise RuntimeError(f"variant {variant} does not publish: {err.decode()[-2000:]}")

    @staticmethod
    def answers(snapshot: Any) -> dict[str, list[str]]:
        found = {f"q:{text}|{json.dumps(filters)}": [h.item_id for h in snapshot.search(text, K, filters)]
                 for text, filters in QUERIES}
        return found | {f"s:{item}": [h.item_id for h in snapshot.more_like(item, K)] for item in SIMILAR}

    def publish(self, variant: str, root: str | None = None) -> subprocess.Popen:
        inputs = self.inputs[variant]
        argv = [sys.executable, "-m", "pipelines.cli", "publish", "--catalog", CATALOG, "--root", root or self.root,
                "--params", str(self.work / "params.yaml")]
        for name in ("index", "encoder", "documents", "fusion", "metrics"):
            argv += [f"--{name}", str(inputs[name])]
        return subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start_server(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "serve", "--root", self.root, "--catalog", CATALOG, "--cache",
             str(self.work / "cache-server"), "--poll-seconds", "1", "--port", str(self.port)],
            env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(self.work / "server.log", "w"))
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("semrec serve did not come up")

    # --- recording ------------------------------------------------------------------------------------
    def minute(self) -> float:
        return (time.monotonic() - self.started) / 60

    def record(self, source: str, snapshot_id: str, key: str, ids: list[str] | None, seconds: float,
               error: str | None = None) -> None:
        with self.lock:
            self.counts[f"{source}_queries"] += 1
            self.window_counts[f"{source}_queries"] += 1
            if error is not None:
                self.counts[f"{source}_failures"] += 1
                self.window_counts[f"{source}_failures"] += 1
                self.example(f"{self.minute():.1f} min {source} {key}: {error}")
                return
            self.latencies.add(source, seconds)
            expected = self.expected.get(variant_of(snapshot_id), {}).get(key)
            if ids != expected:
                self.counts[f"{source}_wrong_snapshot"] += 1
                self.window_counts[f"{source}_wrong_snapshot"] += 1
                self.example(f"{self.minute():.1f} min {source} {key}: {ids} from {snapshot_id}, expected {expected}")

    def example(self, line: str) -> None:
        if len(self.examples) < 30:
            self.examples.append(line)

    def event(self, kind: str, **fields: Any) -> None:
        with self.lock:
            self.counts[kind + ("" if "outcome" not in fields else f"_{fields['outcome']}")] += 1
            self.events.append({"minute": round(self.minute(), 2), "kind": kind, **fields})

    # --- readers ---------------------------------------------------------------------------------------
    def reader_loop(self, reader: Reader, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            text, filters = rng.choice(QUERIES)
            key = f"q:{text}|{json.dumps(filters)}"
            snapshot = reader.snapshot  # one snapshot for the whole query, as a service would
            began = time.perf_counter()
            try:
                ids = [h.item_id for h in snapshot.search(text, K, filters)]
            except Exception as err:  # noqa: BLE001 - every failure is counted
                self.record("reader", snapshot.snapshot_id, key, None, 0.0, f"{type(err).__name__}: {err}")
                continue
            self.record("reader", snapshot.snapshot_id, key, ids, time.perf_counter() - began)

    def take_http_tallies(self, batches: multiprocessing.Queue) -> None:
        """Add the HTTP client process's tallies until it sends None."""
        while (batch := batches.get()) is not None:
            counts, latencies, examples = batch
            with self.lock:
                self.counts.update(counts)
                self.window_counts.update(counts)
                self.latencies.extend("http", latencies)
                for line in examples:
                    self.example(f"{self.minute():.1f} min {line}")

    # --- publishers, rollbacks, kills ----------------------------------------------------------------------
    def check_latest(self, after: str) -> None:
        """LATEST names a snapshot whose every file matches its manifest (retried only if LATEST moved)."""
        store = Store(self.root)
        for _ in range(5):
            live = store.latest(CATALOG).snapshot_id
            try:
                with tempfile.TemporaryDirectory(dir=self.work) as cache:
                    pull(store, CATALOG, live, cache)
                self.event("latest_check", after=after, outcome="ok")
                return
            except Exception as err:  # noqa: BLE001 - a failure only if LATEST still names it
                if store.latest(CATALOG).snapshot_id == live:
                    self.event("latest_check", after=after, outcome="failed", error=f"{type(err).__name__}: {err}")
                    self.example(f"{self.minute():.1f} min LATEST {live} does not verify after {after}: {err}")
                    return
        self.event("latest_check", after=after, outcome="ok")

    def run_publish(self, who: str, variant: str, kill_after: float | None = None) -> None:
        began = time.monotonic()
        process = self.publish(variant)
        if kill_after is not None and not self.stop.wait(kill_after) and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            self.event("publish", who=who, variant=variant, outcome="killed", after_s=round(kill_after, 2))
        else:
            _, err = process.communicate()
            code = process.returncode
            outcome = {0: "ok", 1: "lost_race"}.get(code, f"exit_{code}")
            self.event("publish", who=who, variant=variant, outcome=outcome, seconds=round(time.monotonic() - began, 2),
                       **({"stderr": err.decode()[-300:]} if code not in (0, 1) else {}))
            if code == 0:
                self.publish_seconds.append(time.monotonic() - began)
        self.check_latest(f"{who} publish")

    def publisher_1(self) -> None:
        """A publish every 30 s, A and B in turn. A kill is due every tenth of the run (less a margin): it is
        tried on each publish until one is still in flight at its random kill time."""
        variants, cycle = ["A", "B"], 0
        kill_every_s = self.minutes * 60 / (KILLS + 0.5)
        while not self.stop.wait(max(0.0, self.started + 30 * (cycle + 1) - time.monotonic())):
            cycle += 1
            variant = variants[cycle % 2]
            self.last_variant = variant
            due = min(KILLS, int((time.monotonic() - self.started) / kill_every_s))
            kill_after = None
            if self.counts["publish_killed"] < due and self.publish_seconds:
                kill_after = self.rng.uniform(0.1, 0.6) * float(np.median(self.publish_seconds))
            self.run_publish("publisher-1", variant, kill_after)

    def publisher_2(self) -> None:
        cycle = 0
        while not self.stop.wait(max(0.0, self.started + 45 * (cycle + 1) - time.monotonic())):
            cycle += 1
            self.run_publish("publisher-2", "B" if self.last_variant == "A" else "A")

    def roller(self) -> None:
        cycle = 0
        while not self.stop.wait(max(0.0, self.started + 300 * (cycle + 1) - time.monotonic())):
            cycle += 1
            self.roll_back()

    def roll_back(self) -> None:
        """Roll back to the newest complete snapshot that is not live."""
        store = Store(self.root)
        live = store.latest(CATALOG).snapshot_id
        others = [s for s in store.snapshots(CATALOG) if s != live]
        if not others:
            self.event("rollback", outcome="nothing_to_roll_back_to")
            return
        run = subprocess.run([sys.executable, "-m", "pipelines.cli", "publish", "rollback", "--to", others[-1],
                              "--catalog", CATALOG, "--root", self.root, "--params", str(self.work / "params.yaml")],
                             env=self.env, cwd=ROOT, capture_output=True, text=True)
        outcome = {0: "ok", 1: "conflict", 3: "target_pruned"}.get(run.returncode, f"exit_{run.returncode}")
        self.event("rollback", outcome=outcome, to=others[-1],
                   **({"stderr": run.stderr[-300:]} if run.returncode else {}))
        self.check_latest("rollback")

    # --- sampling ----------------------------------------------------------------------------------------
    def sampler(self, clients_pid: int) -> None:
        processes = {"reader": psutil.Process(), "server": psutil.Process(self.server.pid),
                     "http_clients": psutil.Process(clients_pid)}
        next_window = self.started + 60
        while not self.stop.wait(10):
            sample: dict[str, Any] = {"minute": round(self.minute(), 2)}
            for name, process in processes.items():
                sample |= {f"{name}_rss_mb": process.memory_info().rss / 2**20, f"{name}_fds": process.num_fds()}
            self.samples.append(sample)
            if time.monotonic() >= next_window:
                next_window += 60
                self.close_window()
                self.write()

    def close_window(self) -> None:
        with self.lock:
            latencies = self.latencies.take()
            counts, self.window_counts = self.window_counts, Counter()
        window: dict[str, Any] = {"minute": round(self.minute())}
        for source, values in latencies.items():
            ms = np.array(values) * 1000
            window[source] = {"queries": counts[f"{source}_queries"], "failures": counts[f"{source}_failures"],
                              "wrong_snapshot": counts[f"{source}_wrong_snapshot"],
                              "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
                              "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None}
        self.windows.append(window)

    # --- the run ---------------------------------------------------------------------------------------
    def run(self) -> None:
        self.prepare()
        self.start_server()
        reader = Reader.open(self.root, CATALOG, cache_dir=self.work / "cache-readers")
        reader.start_polling(1.0)
        self.started = time.monotonic()
        self.deadline = self.started + self.minutes * 60
        spawn = multiprocessing.get_context("spawn")
        batches, clients_stopped = spawn.Queue(), spawn.Event()
        clients = spawn.Process(target=http_clients,
                                args=(self.port, HTTP_CLIENTS, self.expected, batches, clients_stopped))
        clients.start()
        threads = [threading.Thread(target=self.reader_loop, args=(reader, i), daemon=True) for i in range(8)]
        threads.append(threading.Thread(target=self.take_http_tallies, args=(batches,), daemon=True))
        workers = [threading.Thread(target=t, daemon=True) for t in (self.publisher_1, self.publisher_2, self.roller)]
        sampler = threading.Thread(target=self.sampler, args=(clients.pid,), daemon=True)
        for thread in [*threads, *workers, sampler]:
            thread.start()
        try:
            while time.monotonic() < self.deadline and not self.stop.wait(1):
                pass
        finally:
            self.stop.set()
            clients_stopped.set()
            for thread in [*workers, *threads, sampler]:
                thread.join(120)
            clients.join(60)
            reader.stop_polling()
            self.close_window()
            self.finish()

    def finish(self) -> None:
        self.server.terminate()
        self.server.wait(30)
        store = Store(self.root)
        self.leftovers = sorted(set(store.entries(CATALOG)) - {*store.snapshots(CATALOG), "LATEST", ".LATEST.lock"})
        self.write()

    # --- results -----------------------------------------------------------------------------------------
    def slope(self, key: str) -> float | None:
        """RSS growth in MB per 10 minutes after the warm-up (least squares)."""
        points = [(s["minute"], s[key]) for s in self.samples if s["minute"] >= self.minutes * WARM_UP_FRACTION]
        if len(points) < 3:
            return None
        minutes, values = np.array(points).T
        return round(float(np.polyfit(minutes, values, 1)[0] * 10), 3)

    def summary(self) -> dict[str, Any]:
        c = self.counts
        fds = {key: (self.samples[0][key], self.samples[-1][key], max(s[key] for s in self.samples))
               for key in (f"{p}_fds" for p in PROCESSES)} if self.samples else {}
        warm = [s for s in self.samples if s["minute"] >= self.minutes * WARM_UP_FRACTION]
        return {
            "minutes": round(self.minute(), 1),
            "queries": c["reader_queries"] + c["http_queries"], "reader_queries": c["reader_queries"],
            "http_queries": c["http_queries"], "failed_queries": c["reader_failures"] + c["http_failures"],
            "http_resent": c["http_resent"],
            "wrong_snapshot_answers": c["reader_wrong_snapshot"] + c["http_wrong_snapshot"],
            "publishes": {k.removeprefix("publish_"): v for k, v in c.items() if k.startswith("publish_")},
            "rollbacks": {k.removeprefix("rollback_"): v for k, v in c.items() if k.startswith("rollback_")},
            "latest_checks": c["latest_check_ok"] + c["latest_check_failed"],
            "latest_check_failures": c["latest_check_failed"],
            "rss_slope_mb_per_10min": {key: self.slope(f"{key}_rss_mb") for key in PROCESSES},
            "rss_mb_after_warm_up": {key: [round(warm[0][f"{key}_rss_mb"], 1), round(warm[-1][f"{key}_rss_mb"], 1)]
                                     for key in PROCESSES} if warm else {},
            "fds_first_last_max": fds, "debris_left": getattr(self, "leftovers", None),
        }

    def write(self) -> None:
        with self.lock:
            report = {"summary": self.summary(), "windows": list(self.windows), "samples": list(self.samples),
                      "events": list(self.events), "failure_examples": list(self.examples),
                      "setup": {"queries": [q for q, _ in QUERIES], "similar": SIMILAR, "k": K, "reader_threads": 8,
                                "http_clients": HTTP_CLIENTS, "publish_every_s": [30, 45], "rollback_every_s": 300,
                                "kills_wanted": KILLS, "keep": 3, "gc_grace_hours": 0.05, "nice": os.nice(0),
                                "cpus": os.cpu_count()}}
        (RESULTS / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
        (RESULTS / "soak.md").write_text(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    s, setup = report["summary"], report["setup"]
    lines = [
        "# Soak: publishers, rollbacks, kill -9s and readers together (bench/soak.py)", "",
        f"{s['minutes']} minutes on {setup['cpus']} shared cores at nice {setup['nice']}; publisher 1 every "
        f"{setup['publish_every_s'][0]} s (A/B alternating, {setup['kills_wanted']} kill -9s), publisher 2 every "
        f"{setup['publish_every_s'][1]} s, a rollback every {setup['rollback_every_s'] // 60} min, keep "
        f"{setup['keep']}, gc grace {setup['gc_grace_hours'] * 60:.0f} min; {setup['reader_threads']} reader "
        f"threads on one Reader and {setup['http_clients']} HTTP clients (in a process of their own) of "
        "`semrec serve`, both polling LATEST every second.", "",
        "| | |", "|---|---|",
        f"| queries (reader / HTTP) | {s['queries']:,} ({s['reader_queries']:,} / {s['http_queries']:,}) |",
        f"| failed queries | {s['failed_queries']} |",
        f"| HTTP requests sent again after the server closed their kept-alive connection | {s['http_resent']} |",
        f"| answers from a snapshot other than the one reported | {s['wrong_snapshot_answers']} |",
        f"| publishes | {s['publishes']} |", f"| rollbacks | {s['rollbacks']} |",
        f"| LATEST verified after a step | {s['latest_checks']} times, {s['latest_check_failures']} failed |",
        "| RSS slope after warm-up, MB per 10 min (reader / server / the HTTP clients' process) | "
        + " / ".join(str(s["rss_slope_mb_per_10min"][p]) for p in PROCESSES) + " |",
        f"| RSS after warm-up, first -> last MB | {s['rss_mb_after_warm_up']} |",
        f"| open fds, first / last / max | {s['fds_first_last_max']} |",
        f"| crash debris left at the end | {s['debris_left']} |", "",
        "| minute | reader q | reader p50 / p99 ms | HTTP q | HTTP p50 / p99 ms | failures | wrong snapshot |",
        "|---:|---:|---:|---:|---:|---:|---:|"]
    for w in report["windows"]:
        r, h = w["reader"], w["http"]
        lines.append(f"| {w['minute']} | {r['queries']} | {r['p50_ms']} / {r['p99_ms']} | {h['queries']} | "
                     f"{h['p50_ms']} / {h['p99_ms']} | {r['failures'] + h['failures']} | "
                     f"{r['wrong_snapshot'] + h['wrong_snapshot']} |")
    lines += ["", "RSS / fds every 10 s and every publish, rollback and LATEST check: soak.json."]
    if report["failure_examples"]:
        lines += ["", "First failures and resends:", "", *[f"- {e}" for e in report["failure_examples"]]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args()
    work = RESULTS / "tmp" / "soak"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    Soak(work, args.minutes, args.seed).run()


if __name__ == "__main__":
    main()
