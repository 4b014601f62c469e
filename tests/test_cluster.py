"""ingest (Polars engine), embed and index on a real Dask cluster give the local executor's outputs byte for byte.

(a) a `LocalCluster` of 2 worker processes, on slices of the bundled data; (b) a `dask scheduler` and two
`dask worker` OS processes on 127.0.0.1 (real TCP), the raw files and every intermediate on S3 (moto),
nothing left running after; (c) a worker SIGKILLed mid-run: Dask runs its tasks again and the outputs
are the same, or the run fails clearly and the output folder holds nothing new.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import fsspec
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from ingest_slices import FIXTURES, ROOT, real_raw_slice
from snapshot_fixture import items_table, write_encoder

from pipelines import embed, index
from pipelines.common.executor import ExecutorSettings
from pipelines.common.params import load_section
from pipelines.ingest import stage

LOCAL = ExecutorSettings()
LOCAL_CLUSTER = ExecutorSettings(kind="local-cluster")
CATALOGS = {key: block["ingest"] for key, block in load_section("catalogs", ROOT / "params.yaml").items()}
BEAUTY = {"plugin": "amazon2023", "category": "All_Beauty", "document_max_chars": 1200}
FILTERS = {"min_rating": 4, "min_tokens": 5, "language": "en", "min_user_positives": 3}
EMBED = {"variant": "int8", "batch_size": 2, "threads": 1}  # parts of 2 * 16 * 8 = 256 texts
INDEX = {"shards": 4, "workers": 4, "m": 8, "ef_construction": 40, "recall_target": 0.98, "ef_search_grid": [8, 32],
         "tune_k": 3, "tune_queries": 20, "tune_short_words": 1, "seed": 1}


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too: a leftover temp or work folder is a difference)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def ingested(catalog: str, raw: str | Path, out: Path, executor: ExecutorSettings,
             options: dict | None = None) -> dict[str, bytes]:
    params = {"engine": "polars", "workers": 2, "filters": FILTERS}
    stage.ingest(catalog, str(raw), options or CATALOGS[catalog], params, out, executor=executor)
    return files(out)


def small_row_groups(raw: Path, rows: int) -> Path:
    """The slice's Parquet files rewritten in row groups of `rows`: one split each, many tasks."""
    for name in ("movielens_latest_small.parquet", "womens_clothing_reviews.parquet"):
        pq.write_table(pq.read_table(raw / name), raw / name, row_group_size=rows)
    return raw


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_row_groups(real_raw_slice(tmp_path_factory.mktemp("raw"), ratings=3000, reviews=2000), 300)


def embedded_and_indexed(root: Path, encoder: Path, executor: ExecutorSettings, out: Path,
                         workers: int = 2) -> dict[str, bytes]:
    """`semrec embed` (on `workers`) and `semrec index` of root/documents.parquet into `out`, as run from
    params.yaml."""
    out.mkdir()
    params = out.parent / f"{out.name}.params.yaml"
    params.write_text(yaml.safe_dump({"embed": {**EMBED, "workers": workers}, "index": INDEX, "executor": {
        k: v for k, v in vars(executor).items() if v is not None}}))
    assert embed.main(["--documents", str(root / "documents.parquet"), "--encoder", str(encoder),
                       "--out", str(out / "embeddings.npy"), "--report", str(root / "embed.json"),
                       "--params", str(params)]) == 0
    assert index.main(["--documents", str(root / "documents.parquet"), "--embeddings", str(out / "embeddings.npy"),
                       "--items", str(root / "items.parquet"), "--queries", str(root / "queries.parquet"),
                       "--encoder", str(encoder), "--out", str(out / "index"), "--report", str(root / "index.json"),
                       "--curve", str(root / "curve.csv"), "--params", str(params)]) == 0
    return files(out)


def write_catalog(root: Path, items: pa.Table) -> Path:
    """documents, items and tuning queries of `items` (their titles) under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(items, root / "items.parquet")
    pq.write_table(items.select(["item_id", "document"]), root / "documents.parquet")
    titles = items.column("title").to_pylist()[:40]
    pq.write_table(pa.table({"query_id": [f"q{i}" for i in range(len(titles))], "query": titles,
                             "item_id": items.column("item_id").to_pylist()[:40], "kind": ["title"] * len(titles)}),
                   root / "queries.parquet")
    return root


def test_a_local_cluster_gives_the_local_outputs_byte_for_byte(raw, tmp_path):
    for catalog in ("movies", "fashion"):
        local = ingested(catalog, raw, tmp_path / f"{catalog}-local", LOCAL)
        assert sorted(local) == ["counts.json", "interactions.parquet", "items.parquet", "quarantine.parquet"]
        assert ingested(catalog, raw, tmp_path / f"{catalog}-cluster", LOCAL_CLUSTER) == local, catalog
    root = write_catalog(tmp_path / "catalog", pq.read_table(tmp_path / "movies-local" / "items.parquet"))
    assert pq.read_metadata(root / "documents.parquet").num_rows > 3 * 256  # several embed parts
    encoder = write_encoder(tmp_path / "encoder")
    local = embedded_and_indexed(root, encoder, LOCAL, tmp_path / "local", workers=1)  # in this process
    assert {"embeddings.npy", "index/ids.arrow", "index/index.json", "index/shard-0003.faiss"} <= set(local)
    assert embedded_and_indexed(root, encoder, LOCAL_CLUSTER, tmp_path / "cluster") == local


# --- (b), (c): a scheduler and two workers as OS processes ---

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {seconds} s")
        time.sleep(0.2)


class Cluster:
    """`dask scheduler` + `dask worker`s, each in its own process group (a worker's nanny and process)."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.folder, self.env, self.processes = folder, env, []

    def start(self, *command: str) -> None:
        log = (self.folder / f"{len(self.processes)}.log").open("wb")
        self.processes.append(subprocess.Popen([sys.executable, "-m", "dask", *command], env=self.env,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=30)

    def worker_pids(self) -> list[int]:
        with self.client() as client:
            return sorted(client.run(os.getpid).values())

    def stop(self) -> list[int]:
        """Ends every process group: TERM, then KILL what is still running after 30 s; returns the pids still
        running after that (none)."""
        for signum, seconds in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            for process in self.processes:
                try:
                    os.killpg(process.pid, signum)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + seconds
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.2)
        for process in self.processes:
            process.wait(timeout=10)
        return self.running()

    def running(self) -> list[int]:
        """Live (not zombie) processes of the groups: a nanny's worker process outlives the nanny a moment."""
        groups = {process.pid for process in self.processes}
        alive = []
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) in groups and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process.pid)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        return alive


@pytest.fixture
def cluster(tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A scheduler and two single-threaded workers on 127.0.0.1; they and this process reach the moto S3."""
    aws = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    # the workers import this checkout (the installed package may be another one)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, **aws, "PYTHONPATH": path, "POLARS_MAX_THREADS": "1"}
    (tmp_path / "logs").mkdir()
    running = Cluster(tmp_path / "logs", env)
    try:
        # Should pytest itself be killed (no finally), they still end: the scheduler once idle for 5 minutes,
        # the workers a minute after it.
        running.start("scheduler", "--host", "127.0.0.1", "--port", running.address.rsplit(":", 1)[1],
                      "--no-dashboard", "--idle-timeout", "300s")
        for _ in range(2):
            running.start("worker", running.address, "--nthreads", "1", "--no-dashboard", "--death-timeout", "60s",
                          "--local-directory", str(tmp_path / "logs"))
        wait_for(lambda: _workers(running) == 2, "2 workers")
        yield running
    finally:
        assert running.stop() == [], "processes left behind"


def _workers(running: Cluster) -> int:
    try:
        return len(running.worker_pids())
    except OSError:
        return 0


def s3_folder(local: Path) -> str:
    """A fresh bucket holding a copy of `local`'s files; its URL."""
    bucket = f"semrec-cluster-{uuid.uuid4().hex[:12]}"
    boto3.session.Session().client("s3").create_bucket(Bucket=bucket)
    fs = fsspec.filesystem("s3")
    fs.put(str(local), f"{bucket}/raw", recursive=True)
    return f"s3://{bucket}"


def test_b_a_scheduler_and_two_worker_processes_give_the_local_outputs(cluster, raw, tmp_path, monkeypatch):
    bucket = s3_folder(FIXTURES / "amazon2023")
    remote = ExecutorSettings(kind="dask", address=cluster.address, work_url=f"{bucket}/work")
    monkeypatch.setattr(stage, "SPLIT_BYTES", 1024)  # JSONL: a split (and a newline count) per KB, read from S3
    local = ingested("beauty", FIXTURES / "amazon2023", tmp_path / "beauty-local", LOCAL, BEAUTY)
    assert ingested("beauty", f"{bucket}/raw", tmp_path / "beauty-dask", remote, BEAUTY) == local
    local = ingested("fashion", raw, tmp_path / "fashion-local", LOCAL)
    assert ingested("fashion", raw, tmp_path / "fashion-dask", remote) == local
    root = write_catalog(tmp_path / "catalog", pa.concat_tables([items_table()] * 30).set_column(
        0, "item_id", pa.array([f"i{n:04d}" for n in range(30 * items_table().num_rows)])))
    encoder = write_encoder(tmp_path / "encoder")
    local = embedded_and_indexed(root, encoder, LOCAL, tmp_path / "local", workers=1)
    assert embedded_and_indexed(root, encoder, remote, tmp_path / "dask") == local
    s3 = fsspec.filesystem("s3")
    s3.invalidate_cache()
    assert s3.find(f"{bucket}/work") == [], "work folders left behind"


def test_c_a_worker_killed_mid_run_changes_nothing(cluster, tmp_path):
    raw = small_row_groups(real_raw_slice(tmp_path / "raw", ratings=20000, rerated=500), 400)
    local = ingested("movies", raw, tmp_path / "local", LOCAL)
    work = tmp_path / "work"
    remote = ExecutorSettings(kind="dask", address=cluster.address, work_url=str(work))
    out = tmp_path / "dask"
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["files"] = ingested("movies", raw, out, remote)
        except Exception as error:  # noqa: BLE001 - judged below
            outcome["error"] = error

    runner = threading.Thread(target=run)
    victim = cluster.worker_pids()[0]
    runner.start()
    wait_for(lambda: any(work.glob("*/interactions/rows-*.arrow")), "interaction splits spilled", seconds=120)
    assert runner.is_alive(), "the run ended before a worker could be killed: make the slice larger"
    os.kill(victim, signal.SIGKILL)
    runner.join(timeout=300)
    assert not runner.is_alive()
    assert victim not in cluster.worker_pids()  # it died, and its nanny started another
    if "error" in outcome:  # allowed: a clear failure, and nothing of it in the output folder
        assert "worker" in str(outcome["error"]).lower(), outcome["error"]
        assert files(out) == {}
    else:
        assert outcome["files"] == local
    assert not any(work.iterdir()), "work folder left behind"
