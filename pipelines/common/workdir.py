"""A run's work folder: the intermediates its tasks write and read, on storage every task reaches.

A local folder by default; on a cluster any fsspec URL (`s3://bucket/prefix`: endpoint and credentials
from the AWS environment, as publish). Files go through fsspec, except that a local file is read
memory-mapped (zero copy: the spilled chunks of a large ingest pass through at memory speed).
A task's file is written whole by one task: a task run again (its worker died) rewrites it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from pipelines.common.atomic import atomic_path


@dataclass(frozen=True)
class WorkDir:
    url: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.core.url_to_fs(self.url)[0]

    @property
    def path(self) -> str:
        return fsspec.core.url_to_fs(self.url)[1]

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def __truediv__(self, name: str) -> WorkDir:
        return WorkDir(f"{self.url.rstrip('/')}/{name}")

    def unique(self, prefix: str) -> WorkDir:
        """A new subfolder for one run (runs sharing a work URL never meet)."""
        return self / f"{prefix}-{uuid.uuid4().hex[:12]}"

    def makedirs(self) -> WorkDir:
        self.fs.makedirs(self.path, exist_ok=True)
        return self

    def exists(self, name: str) -> bool:
        self.fs.invalidate_cache(self.path)  # other processes write here: never trust a cached listing
        return bool(self.fs.exists(f"{self.path}/{name}"))

    def names(self, prefix: str = "") -> list[str]:
        """The names of the files here starting with `prefix`, sorted."""
        self.fs.invalidate_cache(self.path)
        if not self.fs.exists(self.path):
            return []
        listed = (str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.path, detail=False))
        return sorted(name for name in listed if name.startswith(prefix))

    def open(self, name: str, mode: str = "rb") -> IO[Any]:
        return self.fs.open(f"{self.path}/{name}", mode)

    def input(self, name: str) -> pa.NativeFile:
        """`name` for reading: memory-mapped when local."""
        if self.local:
            return pa.memory_map(f"{self.path}/{name}")
        return pa.PythonFile(self.open(name), mode="r")

    def output(self, name: str) -> pa.NativeFile:
        if self.local:
            return pa.OSFile(f"{self.path}/{name}", "wb")
        return pa.PythonFile(self.open(name, "wb"), mode="w")

    def remove(self, name: str) -> None:
        self.fs.rm_file(f"{self.path}/{name}")

    def remove_all(self) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)

    def write_arrow(self, name: str, tables: list[pa.Table]) -> None:
        """One Arrow IPC file of `tables` (uncompressed: written and read back at memory speed)."""
        with self.output(name) as sink, pa.ipc.new_file(sink, tables[0].schema) as writer:
            for table in tables:
                writer.write_table(table.cast(tables[0].schema))

    def read_arrow(self, name: str) -> pa.Table:
        with self.input(name) as source:
            return pa.ipc.open_file(source).read_all()

    def write_parquet(self, name: str, table: pa.Table) -> None:
        with self.output(name) as sink:
            pq.write_table(table, sink)

    def read_parquet(self, name: str, columns: list[str] | None = None) -> pa.Table:
        with self.input(name) as source:
            return pq.read_table(source, columns=columns)

    def write_npy(self, name: str, array: np.ndarray) -> None:
        """`array` as .npy, whole or not at all (a resumed run trusts the parts it finds)."""
        if self.local:
            with atomic_path(f"{self.path}/{name}") as tmp, tmp.open("wb") as f:
                np.save(f, array, allow_pickle=False)
        else:  # an object store makes the file visible only once complete
            with self.open(name, "wb") as f:
                np.save(f, array, allow_pickle=False)

    def read_npy(self, name: str) -> np.ndarray:
        if self.local:
            return np.load(f"{self.path}/{name}", allow_pickle=False)
        with self.open(name) as f:
            return np.load(f, allow_pickle=False)

    def put(self, local_path: str, name: str) -> None:
        """Copy a local file in (a task's output made by a library that writes only local files)."""
        self.fs.put_file(local_path, f"{self.path}/{name}")

    def get(self, name: str, local_path: str) -> None:
        self.fs.get_file(f"{self.path}/{name}", local_path)

    def move_out(self, name: str, local_path: str | Path) -> None:
        """`name` to a local path: a rename when local, else a download (the folder goes after the run)."""
        if self.local:
            os.replace(f"{self.path}/{name}", local_path)
        else:
            self.get(name, str(local_path))


@contextmanager
def run_folder(work_url: str | None, default: str | Path, prefix: str) -> Iterator[WorkDir]:
    """One run's work folder, removed after the run: `default` (a local folder the run owns), or a new
    folder under `work_url`."""
    folder = WorkDir(str(default)) if work_url is None else WorkDir(work_url).unique(prefix)
    try:
        yield folder.makedirs()
    finally:
        folder.remove_all()
