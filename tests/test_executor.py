"""The executor setting: checked early with the key named, `local` by default, results in order on every kind."""

from __future__ import annotations

import os
import re
import socket

import pytest
import yaml

from pipelines.common import executor
from pipelines.common.executor import ExecutorSettings


@pytest.mark.parametrize(("params", "message"), [
    ({"kind": "cluster"}, "executor.kind: 'cluster' is not one of"),
    ({"kind": "dask", "work_url": "s3://b/w"}, "executor.address: a scheduler address"),
    ({"kind": "local", "address": "tcp://h:8786"}, "executor.address: a scheduler address"),
    ({"kind": "dask", "address": "h:8786", "work_url": "s3://b/w"}, "is not a scheduler address"),
    ({"kind": "dask", "address": "tcp://h:8786"}, "executor.work_url: kind dask needs a work URL"),
    ({"work_url": ""}, "executor.work_url: expected a non-empty string"),
    ({"kind": "local", "workers": 2}, "unknown key(s) ['workers']"),
])
def test_bad_settings_fail_naming_the_key(params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ExecutorSettings.from_params(params, "executor")


def test_params_without_the_section_run_locally(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"embed": {}}))
    assert executor.load(params) == ExecutorSettings()
    params.write_text(yaml.safe_dump({"executor": {"kind": "local-cluster", "work_url": "s3://b/w"}}))
    assert executor.load(params) == ExecutorSettings("local-cluster", None, "s3://b/w")


def test_task_threads_share_the_cores_locally_and_take_one_on_a_cluster():
    remote = ExecutorSettings("dask", "tcp://h:8786", "s3://b/w")
    assert executor.task_threads(remote, 4) == 1
    assert executor.task_threads(ExecutorSettings(), 10_000) == 1


@pytest.mark.parametrize(("kind", "workers"), [("local", 1), ("local", 2), ("local-cluster", 2)])
def test_every_local_kind_maps_in_order(kind, workers):
    with executor.open_executor(ExecutorSettings(kind), workers) as pool:  # type: ignore[arg-type]
        assert list(pool.map(abs, range(-20, 0))) == list(range(20, 0, -1))
        with pytest.raises(TypeError):
            list(pool.map(abs, ["x"]))


def worker_environment(names: tuple[str, ...]) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in names}


@pytest.mark.parametrize("kind", ["local", "local-cluster"])
def test_workers_get_the_stage_env_and_glibc_s_own_trim_threshold(kind, monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    names = ("POLARS_MAX_THREADS", "MALLOC_TRIM_THRESHOLD_")
    with executor.open_executor(ExecutorSettings(kind), 2, {"POLARS_MAX_THREADS": "1"}) as pool:
        seen = list(pool.map(worker_environment, [names, names]))
    assert seen == [{"POLARS_MAX_THREADS": "1", "MALLOC_TRIM_THRESHOLD_": None}] * 2


def test_an_absent_scheduler_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(executor, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    settings = ExecutorSettings("dask", address, "s3://b/w")
    with pytest.raises(ConnectionError, match=f"executor.address: no Dask scheduler answered at {address}"):
        with executor.open_executor(settings, 2):
            pass
