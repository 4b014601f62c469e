"""A raw file cut into splits that workers read on their own, every row numbered as in the file.

Both engines read through here: the Polars engine hands splits to a process pool, the Beam engine
makes them PCollection elements. Paths are anything the opener opens (a local path, or a URL for
`fsspec.open` / Beam's `FileSystems.open`).

- JSONL: byte ranges. A split owns the lines that *start* inside it, reading past its end to finish
  its last line. Its first line number is 1 + the newlines before it: each split counts its own
  newlines (a cheap pass that runs in parallel too), and the counts are summed in split order.
- Parquet: one split per row group; row numbers come from the footer.
- CSV: one split, since a quoted cell may span lines and a byte range could cut a row in two.
- JSON (one array of objects): one split, rows numbered from 1 in array order.
- A compressed file or a member of a zip (pipelines/catalogs/files.py): one split, read to its end.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import IO, Literal

import pyarrow.parquet as pq

from pipelines.catalogs.files import compression, splittable

Format = Literal["jsonl", "json", "csv", "parquet"]
Opener = Callable[[str], IO[bytes]]
BLOCK = 8 << 20  # bytes read at a time while counting or finishing a line
SUFFIXES: dict[str, Format] = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "csv": "csv", "tsv": "csv",
                               "parquet": "parquet"}
TO_END = -1  # the end of a split that is read to the end of its file


@dataclass(frozen=True)
class Csv:
    """How a CSV file separates and quotes its cells (TSV: delimiter "\t")."""

    delimiter: str = ","
    quote: str | None = '"'


@dataclass(frozen=True)
class Split:
    path: str  # what the opener opens
    name: str  # how row refs name the file
    format: Format
    index: int  # position among the file's splits
    start: int  # JSONL: first byte; Parquet: row group; CSV: 0
    end: int  # JSONL: end byte (exclusive); Parquet: row group + 1; CSV: 1
    first_row: int = 1  # number of the split's first byte's line (JSONL) or its first row (Parquet)
    csv: Csv = Csv()


def file_format(name: str) -> Format:
    """The format a file name says, past a compression suffix (reviews.jsonl.gz: jsonl; .tsv: csv)."""
    path = PurePosixPath(name)
    if compression(name):
        path = path.with_suffix("")
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in SUFFIXES:
        raise ValueError(f"{name}: unsupported format '.{suffix}' (expected .jsonl, .ndjson, .json, .csv, .tsv or "
                         f".parquet, optionally compressed; or name the format)")
    return SUFFIXES[suffix]


def plan(path: str, name: str, size: int, opener: Opener, split_bytes: int, fmt: Format | None = None,
         csv: Csv = Csv()) -> list[Split]:
    """The splits of one file of `size` bytes; JSONL splits still need `numbered` before reading."""
    fmt = fmt or file_format(name)
    if fmt == "jsonl":
        if not splittable(path):
            return [Split(path, name, fmt, 0, 0, TO_END)]
        starts = range(0, max(size, 1), split_bytes)
        return [Split(path, name, fmt, i, s, min(s + split_bytes, size)) for i, s in enumerate(starts)]
    if fmt == "parquet":
        with opener(path) as f:
            meta = pq.ParquetFile(f).metadata
        rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        firsts = itertools.accumulate([1, *rows])
        return [Split(path, name, fmt, g, g, g + 1, first) for g, first in zip(range(len(rows)), firsts)]
    return [Split(path, name, fmt, 0, 0, 1, csv=csv)]


def newlines(split: Split, opener: Opener) -> int:
    """Newlines inside a JSONL split's byte range (0 for a split read to the end: it is its file's only one)."""
    count = 0
    with opener(split.path) as f:
        f.seek(split.start)
        left = split.end - split.start
        while left > 0 and (block := f.read(min(BLOCK, left))):
            count += block.count(b"\n")
            left -= len(block)
    return count


def numbered(splits: Sequence[Split], counts: Sequence[int]) -> list[Split]:
    """JSONL splits with their first line numbers, from every split's newline count (in split order)."""
    firsts = itertools.accumulate([1, *counts[:-1]])
    return [replace(s, first_row=first) for s, first in zip(splits, firsts)]


def owned_lines(split: Split, opener: Opener) -> tuple[int, list[bytes]]:
    """The number of the first line that starts inside a JSONL split, and those lines (without newlines)."""
    number = split.first_row
    with opener(split.path) as f:
        if split.start == 0:
            body = f.read(split.end)
        else:  # skip the line that started before us (it ends at the first newline from start - 1)
            f.seek(split.start - 1)
            head = f.read(split.end - split.start + 1)
            cut = head.find(b"\n")
            if cut < 0:
                return number, []
            number += cut > 0  # a newline at or after `start` is one this split counted
            body = head[cut + 1:]
        if body and not body.endswith(b"\n"):  # finish the last line past our end
            while (block := f.read(BLOCK)) and (stop := block.find(b"\n")) < 0:
                body += block
            body += block[:stop + 1] if block else b""
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return number, lines
