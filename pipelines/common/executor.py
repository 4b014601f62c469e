"""Where the per-part tasks of ingest (Polars engine), embed and index run: one setting, three kinds.

- `local` (the default): a process pool of the stage's `workers` on this machine (spawned: Polars
  must not fork, and a forked FAISS inherits OpenMP state that can deadlock), or this process for 1.
- `local-cluster`: a `dask.distributed.LocalCluster` of `workers` single-threaded processes, started
  for the run and closed after it.
- `dask`: the workers of a running Dask scheduler at `address` (`tcp://host:8786`).

Each yields a `concurrent.futures.Executor` (Dask's `Client.get_executor()`), so a stage has one shape:
`executor.map(task, parts)` returns results in order, and each task writes its own part under the run's
work folder (`work_url`, pipelines/common/workdir.py) for the driver to assemble. The kind never changes
an output, so it is no stage's params dependency. Dask is imported only for the Dask kinds: it is in the
`pipelines` extra, never in the reader's install.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml

Kind = Literal["local", "local-cluster", "dask"]
SECTION = "executor"
CONNECT_TIMEOUT_S = 30
TRIM_THRESHOLD = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
T = TypeVar("T")


@dataclass(frozen=True)
class ExecutorSettings:
    """params.yaml `executor`: which kind runs the tasks, and where their intermediates live."""

    kind: Kind = "local"
    address: str | None = None  # dask: the scheduler's address
    work_url: str | None = None  # fsspec URL of the intermediates; None: a folder beside the output (local kinds)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, source: str = SECTION) -> ExecutorSettings:
        """Checked settings, or a one-line error naming the key."""
        params = dict(params or {})
        unknown = set(params) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {sorted(unknown)} (have: kind, address, work_url)")
        settings = cls(**params)
        if settings.kind not in get_args(Kind):
            raise ValueError(f"{source}.kind: {settings.kind!r} is not one of {list(get_args(Kind))}")
        for key in ("address", "work_url"):
            value = getattr(settings, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{source}.{key}: expected a non-empty string or null, not {value!r}")
        if (settings.kind == "dask") != (settings.address is not None):
            raise ValueError(f"{source}.address: a scheduler address (tcp://host:8786) is needed for kind dask "
                             f"and only there (kind {settings.kind}, address {settings.address!r})")
        if settings.address is not None and "://" not in settings.address:
            raise ValueError(f"{source}.address: {settings.address!r} is not a scheduler address (tcp://host:8786)")
        if settings.kind == "dask" and settings.work_url is None:
            # the default work folder is on this machine's disk, which the cluster's workers cannot see
            raise ValueError(f"{source}.work_url: kind dask needs a work URL every worker reaches "
                             "(s3://bucket/prefix, or a folder on a shared mount)")
        return settings

    @property
    def remote(self) -> bool:
        """Whether the tasks may run on other machines (so they must not read this machine's disk)."""
        return self.kind == "dask"


def load(path: str | Path) -> ExecutorSettings:
    """The `executor` section of params.yaml `path`; the default (`local`) where the file has none."""
    with Path(path).open(encoding="utf-8") as f:
        params = yaml.safe_load(f) or {}
    return ExecutorSettings.from_params(params.get(SECTION), f"{path}: {SECTION}")


def task_threads(settings: ExecutorSettings, workers: int) -> int:
    """Cores one task may use: the machine's share of each local process; 1 on a Dask cluster, whose
    workers run as many tasks at once as they have threads."""
    return 1 if settings.remote else max(1, (os.cpu_count() or 1) // max(1, workers))


class InProcess(Executor):
    """Runs each task here, at submit: one worker needs no pool (starting one costs more than it saves)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 - handed to the caller through the future, as a pool would
            future.set_exception(error)
        return future


@contextmanager
def open_executor(settings: ExecutorSettings, workers: int,
                  env: Mapping[str, str] | None = None) -> Iterator[Executor]:
    """An executor of `settings.kind` for the block; `workers` sizes the local kinds, `env` is set in their
    worker processes (a `dask` cluster's workers get theirs from whoever starts them)."""
    if settings.kind == "local":
        with local_pool(workers, env or {}) as pool:
            yield pool
        return
    import dask
    from distributed import Client, LocalCluster

    if settings.kind == "local-cluster":
        # The scheduler runs in this process: its routine INFO lines (workers come and go) are not the stage's.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        # No dashboard, and the scheduler's HTTP endpoint on a free port: two runs at once never fight over
        # 8787. Each worker runs one task at a time. Dask's workers default to MALLOC_TRIM_THRESHOLD_=65536,
        # which makes glibc hand memory back at nearly every free: the Polars tasks then spend more time in
        # the kernel than the local pool's (README, the Dask executor); glibc's own threshold is kept.
        with dask.config.set({TRIM_THRESHOLD: None}), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                             scheduler_kwargs={"dashboard_address": ":0"}, env=dict(env or {})) as cluster, \
                Client(cluster) as client:
            yield dask_executor(client)
        return
    try:
        client = Client(settings.address, timeout=CONNECT_TIMEOUT_S)
    except OSError as error:
        raise ConnectionError(f"{SECTION}.address: no Dask scheduler answered at {settings.address} "
                              f"({error})") from None
    with client:
        yield dask_executor(client)


def dask_executor(client: Any) -> Executor:
    # pure=False: tasks write files, so two equal calls are two runs, never one result shared by key
    return client.get_executor(pure=False)


@contextmanager
def local_pool(workers: int, env: Mapping[str, str]) -> Iterator[Executor]:
    if workers <= 1:
        yield InProcess()
        return
    # The children read the environment when spawned, on the pool's first tasks: keep it set for the block.
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    try:
        yield pool
    finally:  # a failure drops the tasks not yet started
        pool.shutdown(wait=True, cancel_futures=True)
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
