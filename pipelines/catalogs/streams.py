"""A Stream's splits read and mapped chunk by chunk: what both engines (and `catalogs.load`) run per chunk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from pipelines.catalogs.files import exists, open_source, size
from pipelines.catalogs.readers import Rows, check_not_empty, file_splits, split_chunks
from pipelines.catalogs.source import ORDER, Stream, Table, payload, quarantine_frame
from pipelines.catalogs.splits import Opener, Split


@dataclass(frozen=True)
class Mapped:
    rows: pl.DataFrame  # the map's columns plus row_ref and `_ord`
    rejected: pa.Table  # QUARANTINE plus `_ord`: rows that could not be read or that the map refused
    count: int  # rows read


def mapped(stream: Stream, rows: Rows, table: Table) -> Mapped:
    """A typed chunk through the plug-in's map; rows it refuses (`_reason`) go to quarantine at step "read"."""
    out = stream.map(rows.frame)
    if out.height != rows.frame.height:
        raise ValueError(f"{stream.path}: the plug-in's map returned {out.height} rows for {rows.frame.height}")
    out = out.with_columns(rows.frame.select("row_ref", ORDER))
    if "_reason" not in out.columns:
        return Mapped(out, rows.rejected, rows.count)
    refused = out["_reason"].is_not_null()
    source = rows.frame.filter(refused).with_columns(_payload=payload(rows.frame.columns),
                                                     _reason=out.filter(refused)["_reason"],
                                                     _field=out.filter(refused)["_field"])
    map_rejected = quarantine_frame(source, table, "read", reason=pl.col("_reason"), field=pl.col("_field"))
    rejected = pa.concat_tables([rows.rejected, map_rejected]).sort_by(ORDER)
    return Mapped(out.filter(~refused).drop("_reason", "_field"), rejected, rows.count)


def read_mapped(stream: Stream, split: Split, table: Table, opener: Opener) -> Iterator[Mapped]:
    for rows in split_chunks(split, stream.fields, table, stream.list_separator, opener):
        yield mapped(stream, rows, table)


def read_whole(stream: Stream, raw: str | Path, table: Table) -> tuple[pl.DataFrame, pa.Table, int]:
    """A stream read in one process: (mapped rows, quarantine, rows read)."""
    path = stream.where(str(raw))
    if not exists(path):
        raise FileNotFoundError(f"{stream.path}: no such file {path}")
    parts = [part for split in file_splits(path, stream.path, size(path), open_source,
                                           fmt=stream.format, csv=stream.csv)
             for part in read_mapped(stream, split, table, open_source)]
    count = sum(p.count for p in parts)
    check_not_empty(stream.path, count)
    return (pl.concat([p.rows for p in parts], how="diagonal_relaxed"),
            pa.concat_tables([p.rejected for p in parts]).drop_columns([ORDER]), count)
