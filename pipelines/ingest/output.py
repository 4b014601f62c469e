"""The ingest stage's files, written as rows arrive (either engine), in a canonical order.

items.parquet and interactions.parquet take rows in source order. quarantine.parquet holds the
phases in PHASES order: unreadable interactions, then items (unreadable, untitled, duplicate ids),
then the interactions the filters rejected; each in source order. The first four may arrive in any
order (the Polars engine finishes items before it reads interactions) and wait in small part files;
the last, by far the largest (every rating below the minimum), must come last and goes straight
into the file once the parts are copied in.

Parquet encoding runs on background threads, one per file (pyarrow encodes a file on one core), each
in call order and at most one table behind the caller: pyarrow releases the GIL while it encodes, so
interactions and quarantine chunks encode side by side while the engine's driver prepares the next ones.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.catalogs.source import ORDER, Items, canonical, duplicates, titled
from pipelines.common.schemas import INTERACTIONS, ITEMS, QUARANTINE, conform

PHASES = ("interactions_read", "items_read", "items_title", "items_unique", "interactions_filters")
QUARANTINE_FILE = "quarantine.parquet"
FILES = ("items.parquet", "interactions.parquet", QUARANTINE_FILE)


class Output:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}
        self.ids: list[pa.Array] = []
        self.encoders: dict[str, ThreadPoolExecutor] = {}  # file name -> its encoding thread
        self.pending: dict[str, Future[None]] = {}  # file name -> its table in flight

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self.writers:  # quarantine parts are read back once: cheap lz4, not zstd
            compression = "lz4" if name.startswith("quarantine-") else "zstd"
            self.writers[name] = pq.ParquetWriter(self.folder / name, table.schema, compression=compression)
            self.rows[name] = 0
        if table.num_rows:
            self.wait(name)
            encoder = self.encoders.setdefault(name, ThreadPoolExecutor(1, thread_name_prefix=f"ingest-{name}"))
            self.pending[name] = encoder.submit(self.writers[name].write_table, table)
            self.rows[name] += table.num_rows

    def wait(self, name: str | None = None) -> None:
        """Until the table in flight (of file `name`, or of every file) is written; a failed write raises here."""
        for file in [name] if name else list(self.pending):
            if (pending := self.pending.pop(file, None)) is not None:
                pending.result()

    def stop(self) -> None:
        """Let the writes in flight finish and end the threads (after `close`, or when the run failed)."""
        for encoder in self.encoders.values():
            encoder.shutdown(wait=True, cancel_futures=True)

    def items(self, rows: pl.DataFrame | pa.Table) -> None:
        table = conform(rows, ITEMS, "items") if isinstance(rows, pa.Table) else canonical(rows, ITEMS, "items")
        self.ids.append(table.column("item_id").combine_chunks())
        self.write("items.parquet", table)

    def item_ids(self) -> pa.Array:
        """The kept item ids, once: they are not held after this."""
        ids, self.ids = self.ids, []
        return pa.concat_arrays(ids) if ids else pa.array([], pa.string())

    def interactions(self, rows: pl.DataFrame | pa.Table) -> None:
        table = rows.to_arrow() if isinstance(rows, pl.DataFrame) else rows
        self.write("interactions.parquet", conform(table, INTERACTIONS, "interactions"))

    def quarantine_part(self, phase: str, rows: pl.DataFrame | pa.Table) -> None:
        table = conform(rows.to_arrow() if isinstance(rows, pl.DataFrame) else rows, QUARANTINE, f"quarantine {phase}")
        if phase == PHASES[-1]:
            self.write(self.quarantine(), table)
        elif QUARANTINE_FILE in self.writers:
            raise ValueError(f"quarantine phase {phase!r} arrived after {PHASES[-1]!r}, which must come last")
        else:
            self.write(f"quarantine-{PHASES.index(phase)}.parquet", table)

    def quarantine(self) -> str:
        """quarantine.parquet, opened on first use with the parts written so far copied in, in PHASES order."""
        if QUARANTINE_FILE not in self.writers:
            self.wait()
            parts = sorted(name for name in self.writers if name.startswith("quarantine-"))
            for name in parts:
                self.writers.pop(name).close()
            self.write(QUARANTINE_FILE, pa.Table.from_batches([], QUARANTINE))
            for name in parts:
                file = pq.ParquetFile(self.folder / name)
                for group in range(file.num_row_groups):
                    self.write(QUARANTINE_FILE, file.read_row_group(group))
                (self.folder / name).unlink()
        return QUARANTINE_FILE

    def close(self) -> dict[str, int]:
        """Finish every file (empty ones too); returns rows per file."""
        self.quarantine()
        for name, schema in (("items.parquet", ITEMS), ("interactions.parquet", INTERACTIONS)):
            self.write(name, pa.Table.from_batches([], schema))  # not schema.empty_table(): it imports pandas
        self.wait()
        self.stop()
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
        return {name: self.rows[name] for name in FILES}


def whole_items(items: Items, catalog: str) -> tuple[pl.DataFrame, list[tuple[str, pa.Table]]]:
    """Items a plug-in built whole through the title and unique checks, in memory: the kept items
    (with ORDER, their position) and the quarantine parts (phase, rows with ORDER)."""
    frame = items.frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ORDER))
    good, untitled = titled(frame, catalog)
    first = pl.col("item_id").is_first_distinct()
    later = good.with_columns(_first=pl.col("row_ref").first().over("item_id")).filter(~first)
    read = pa.table(items.quarantine).append_column(ORDER, pa.array(range(items.quarantine.num_rows), pa.int64()))
    return good.filter(first), [("items_read", read), ("items_title", untitled), ("items_unique", duplicates(later))]


def interaction_rows(mapped: pl.DataFrame) -> pl.DataFrame:
    """A mapped chunk as INTERACTIONS rows with their ORDER (what the rules judge)."""
    return pl.from_arrow(canonical(mapped, INTERACTIONS, "interactions")).with_columns(mapped[ORDER])


def item_rows(titled_items: pl.DataFrame) -> pl.DataFrame:
    """Titled items as ITEMS rows plus what the unique rule needs: row_ref, ORDER and _payload."""
    return pl.from_arrow(canonical(titled_items, ITEMS, "items")).with_columns(
        titled_items.select("row_ref", ORDER, "_payload"))
