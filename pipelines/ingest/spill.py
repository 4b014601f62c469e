"""The Polars engine's spill: what pass 1 writes per split and pass 2 reads back, as Arrow IPC files in the
run's work folder (pipelines/common/workdir.py), which a cluster's workers share.

A table's folder holds, per split n: rows-n.arrow (its chunks, interactions with their row-rule verdicts),
read-n.arrow (rows that could not be read), title-n.arrow (items without a title) and, for interactions,
keys-n.arrow (the key columns of live rows with a user, one record batch per user partition). Names sort
in split order, so reading them in name order reads the source in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import polars as pl
import pyarrow as pa

from pipelines.catalogs.source import ORDER
from pipelines.common.workdir import WorkDir

PARTITIONS = 64  # user partitions of the key columns: pass 2 holds one at a time
KEYS = {"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Int64, ORDER: pl.Int64}
KNOWN_ITEMS = "known_items.parquet"


def name(kind: str, split: int) -> str:
    return f"{kind}-{split:06d}.arrow"


def write_split(folder: WorkDir, split: int, parts: dict[str, list[pa.Table]]) -> None:
    """One Arrow IPC file per kind of `parts` (rows, read, title), none for a kind with no rows."""
    for kind, tables in parts.items():
        tables = [t for t in tables if t.num_rows]
        if tables:
            folder.write_arrow(name(kind, split), tables)


def write_keys(folder: WorkDir, split: int, keys: list[pa.Table]) -> None:
    """A split's KEYS as one Arrow file of PARTITIONS record batches, batch p = user partition p."""
    frame = pl.concat([pl.from_arrow(k) for k in keys]) if keys else pl.DataFrame(schema=KEYS)
    parts = frame.with_columns(_part=user_partition(frame)).partition_by("_part", as_dict=True, include_key=False)
    schema = frame.to_arrow().schema
    with folder.output(name("keys", split)) as sink, pa.ipc.new_file(sink, schema) as writer:
        for part in range(PARTITIONS):
            rows = parts.get((part,))
            writer.write_batch(pa.RecordBatch.from_pylist([], schema=schema) if rows is None else
                               rows.to_arrow().cast(schema).combine_chunks().to_batches()[0])


def user_partition(keys: pl.DataFrame) -> pl.Series:
    return (keys["user_id"].hash(seed=0) % PARTITIONS).cast(pl.Int32)


def names(folder: WorkDir, kind: str) -> list[str]:
    return [file for file in folder.names(f"{kind}-") if file.endswith(".arrow")]


def tables(folder: WorkDir, kind: str) -> Iterator[pa.Table]:
    """Each split's file of `kind`, whole (the small quarantine kinds: read, title)."""
    for file in names(folder, kind):
        yield folder.read_arrow(file)


def chunks(folder: WorkDir, kind: str = "rows") -> Iterator[pa.Table]:
    """The spilled chunks in order, one at a time, each file deleted once read (its chunks still map it),
    so the spill shrinks while the output grows. They stay Arrow: the writer takes kept rows as they are."""
    for file in names(folder, kind):
        with folder.input(file) as source:
            reader = pa.ipc.open_file(source)
            for batch in range(reader.num_record_batches):
                yield pa.Table.from_batches([reader.get_batch(batch)])
        folder.remove(file)


def partitions(folder: WorkDir, parts: range) -> Iterator[pa.Table]:
    """User partitions `parts` of KEYS, each gathered from every split's keys file; empty ones skipped."""
    with ExitStack() as stack:
        readers = [pa.ipc.open_file(stack.enter_context(folder.input(file))) for file in names(folder, "keys")]
        for part in parts:
            keys = [reader.get_batch(part) for reader in readers]
            if any(batch.num_rows for batch in keys):
                yield pa.Table.from_batches(keys)
