"""The ingest stage's files, written as rows arrive (either engine), in a canonical order.

items.parquet and interactions.parquet take rows in source order. quarantine.parquet is assembled
from parts per phase, in PHASES order whatever order they arrive in (the Polars engine finishes
items before interactions): unreadable interactions, then items (unreadable, untitled, duplicate
ids), then the interactions the filters rejected; each part in source order.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.catalogs.source import ORDER, Items, canonical, duplicates, titled
from pipelines.common.schemas import INTERACTIONS, ITEMS, QUARANTINE, conform

PHASES = ("interactions_read", "items_read", "items_title", "items_unique", "interactions_filters")
FILES = ("items.parquet", "interactions.parquet", "quarantine.parquet")


class Output:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}
        self.ids: list[pa.Array] = []

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self.writers:  # quarantine parts are read back once: cheap lz4, not zstd
            compression = "lz4" if name.startswith("quarantine-") else "zstd"
            self.writers[name] = pq.ParquetWriter(self.folder / name, table.schema, compression=compression)
            self.rows[name] = 0
        if table.num_rows:
            self.writers[name].write_table(table)
            self.rows[name] += table.num_rows

    def items(self, rows: pl.DataFrame) -> None:
        table = canonical(rows, ITEMS, "items")
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
        table = rows.to_arrow() if isinstance(rows, pl.DataFrame) else rows
        self.write(f"quarantine-{PHASES.index(phase)}.parquet", conform(table, QUARANTINE, f"quarantine {phase}"))

    def close(self) -> dict[str, int]:
        """Finish every file (empty ones too); returns rows per file."""
        for name, schema in (("items.parquet", ITEMS), ("interactions.parquet", INTERACTIONS)):
            self.write(name, schema.empty_table())
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
        parts = sorted(self.folder.glob("quarantine-*.parquet"))
        self.rows["quarantine.parquet"] = 0
        with pq.ParquetWriter(self.folder / "quarantine.parquet", QUARANTINE, compression="zstd") as writer:
            for part in parts:
                file = pq.ParquetFile(part)
                for group in range(file.num_row_groups):
                    table = file.read_row_group(group)
                    writer.write_table(table)
                    self.rows["quarantine.parquet"] += table.num_rows
                part.unlink()
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
