"""Read a source file into typed columns; every row that cannot be read goes to quarantine.

Files are read split by split (pipelines/catalogs/splits.py), so no engine holds a whole file.
JSONL lines are decoded by msgspec against a struct of the fields: strict types at C speed. A line
it refuses (or one with a blank required field) is decoded again by the reference path (`json` +
`typed_value`), which names the reason, so the fast path only decides which lines need explaining:
a line that is not UTF-8, not JSON, not an object, lacks a required field or has a value of the
wrong type is quarantined with the file and line in `row_ref`. CSV and Parquet are typed column by
column: a value that does not convert, or a missing required one, quarantines its row (row numbers
count data rows from 1). An empty file, a CSV that is not UTF-8 or a missing column is an error
naming the file (and line), since no row can be read.

Chunks carry `_ord`, the row's line (JSONL) or row number: the engines' source order.
"""

from __future__ import annotations

import codecs
import gc
import json
import math
import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.catalogs.files import exists, open_source, size
from pipelines.catalogs.source import ORDER, Field, Table, quarantine_frame, rejection
from pipelines.catalogs.splits import Csv, Format, Opener, Split, file_format, newlines, numbered, owned_lines, plan
from pipelines.common.schemas import QUARANTINE

DTYPES: dict[str, pl.DataType] = {
    "str": pl.String(), "float": pl.Float64(), "int": pl.Int64(), "str_list": pl.List(pl.String()),
    "json": pl.String(),  # any JSON value, kept as JSON text
}
ARROW = {"str": pa.string(), "float": pa.float64(), "int": pa.int64(), "str_list": pa.list_(pa.string()),
         "json": pa.string()}
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


@dataclass(frozen=True)
class Rows:
    frame: pl.DataFrame  # row_ref, then one typed column per field (chunks: `_ord` after row_ref)
    rejected: pa.Table  # QUARANTINE (chunks: plus `_ord`)
    count: int  # rows read

    def whole(self) -> pl.DataFrame:
        """The frame of a lookup table (links, credits), which must read whole: quarantining one of
        its rows would silently change the rows it joins to. Otherwise an error naming the first bad row."""
        if self.rejected.num_rows:
            bad = self.rejected.slice(0, 1).to_pylist()[0]
            raise ValueError(f"{bad['row_ref']}: {bad['field'] or 'row'}: {bad['reason']} "
                             f"({self.rejected.num_rows} unreadable row(s) in a lookup table)")
        return self.frame


class RowError(ValueError):
    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.field = reason, field


def read(path: str | Path, name: str, fields: Sequence[Field], table: Table, list_separator: str = "|") -> Rows:
    """Read all of the file at `path` (a location: pipelines/catalogs/files.py) at once; `name` is how
    row_refs name the file."""
    path = str(path)
    if not exists(path):
        raise FileNotFoundError(f"{name}: no such file {path}")
    parts = [read_split(split, fields, table, list_separator, open_source)
             for split in file_splits(path, name, size(path), open_source)]
    check_not_empty(name, sum(p.count for p in parts))
    return Rows(pl.concat([p.frame for p in parts]).drop(ORDER),
                pa.concat_tables([p.rejected for p in parts]).drop_columns([ORDER]), sum(p.count for p in parts))


def check_not_empty(name: str, count: int) -> None:
    if not count:
        raise ValueError(f"{name}: empty file (no rows)")


def file_splits(path: str, name: str, size: int, opener: Opener, split_bytes: int = 64 << 20,
                fmt: Format | None = None, csv: Csv = Csv()) -> list[Split]:
    """A file's splits, JSONL ones numbered by counting newlines here (the engines count in parallel)."""
    planned = plan(path, name, size, opener, split_bytes, fmt, csv)
    if (fmt or file_format(name)) != "jsonl":
        return planned
    return numbered(planned, [newlines(s, opener) for s in planned])


def read_split(split: Split, fields: Sequence[Field], table: Table, list_separator: str,
               opener: Opener) -> Rows:
    """One split as typed rows with `_ord`, and its unreadable rows (QUARANTINE plus `_ord`)."""
    chunks = list(split_chunks(split, fields, table, list_separator, opener))
    if not chunks:
        return Rows(pl.DataFrame(schema=chunk_schema(fields)), ordered_quarantine([]), 0)
    return Rows(pl.concat(c.frame for c in chunks), pa.concat_tables(c.rejected for c in chunks),
                sum(c.count for c in chunks))


def split_chunks(split: Split, fields: Sequence[Field], table: Table, list_separator: str,
                 opener: Opener, chunk_rows: int = 100_000) -> Iterator[Rows]:
    """A split in chunks of at most `chunk_rows` rows (a Parquet row group or CSV file may be larger)."""
    if split.format == "jsonl":
        first, lines = owned_lines(split, opener)
        for start in range(0, len(lines), chunk_rows):
            yield read_jsonl_lines(lines[start:start + chunk_rows], first + start, split.name, fields, table)
    elif split.format == "parquet":
        with opener(split.path) as f:
            first = split.first_row
            for batch in pq.ParquetFile(f).iter_batches(chunk_rows, row_groups=[split.start]):
                yield typed_columns(pl.from_arrow(pa.Table.from_batches([batch])), split.name, fields, table,
                                    list_separator, first)
                first += batch.num_rows
    elif split.format == "json":
        with opener(split.path) as f:
            yield read_json_array(f.read(), split.name, fields, table)
    else:
        with opener(split.path) as f:
            yield read_csv(f.read(), split.name, fields, table, list_separator, split.csv)


def chunk_schema(fields: Sequence[Field]) -> dict[str, pl.DataType]:
    return {"row_ref": pl.String(), ORDER: pl.Int64(), **{f.name: DTYPES[f.kind] for f in fields}}


def ordered_quarantine(rows: list[dict[str, Any]]) -> pa.Table:
    """QUARANTINE rows that keep their source position `_ord`."""
    return pa.Table.from_pylist(rows, schema=QUARANTINE.append(pa.field(ORDER, pa.int64())))


def json_text(value: Any) -> str:
    """A JSON value as compact JSON text (the `json` kind), the same from either decoder."""
    return msgspec.json.encode(value).decode()


def typed_value(value: Any, field: Field) -> Any:
    """`value` as `field.kind`, or RowError (missing_field / wrong_type)."""
    if value is None or (field.required and isinstance(value, str) and not value.strip()):
        if field.required:
            raise RowError("missing_field", field.name)
        return None
    kind = field.kind
    ok = {
        "str": isinstance(value, str),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "str_list": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "json": True,
    }[kind]
    if not ok:
        got = JSON_TYPES.get(type(value), type(value).__name__)
        raise RowError(f"wrong_type: expected {kind}, got {got} {json.dumps(value)[:40]}", field.name)
    if kind == "float":
        return float(value)
    return json_text(value) if kind == "json" else value


def parse_line(line: bytes, fields: Sequence[Field]) -> dict[str, Any]:
    """The reference decoder: the line's typed fields, or RowError naming why it cannot be read."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RowError(f"not_utf8: byte 0x{line[err.start]:02x} at column {err.start + 1}") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise RowError(f"not_json: {err.msg} (column {err.colno})") from None
    if not isinstance(record, dict):
        raise RowError(f"not_object: a JSON {JSON_TYPES.get(type(record), 'value')}")
    return {f.name: typed_value(record.get(f.name), f) for f in fields}


MSGSPEC_TYPES: dict[str, Any] = {"str": str, "float": float, "int": int, "str_list": list[str], "json": Any}


@cache
def fast_decoder(fields: tuple[Field, ...]) -> msgspec.json.Decoder:
    """A strict decoder of the fields: a required field has no default, so null or absent fails."""
    spec = [(f"f{i}", MSGSPEC_TYPES[f.kind], msgspec.field(name=f.name)) if f.required and f.kind != "json" else
            (f"f{i}", MSGSPEC_TYPES[f.kind] | None, msgspec.field(name=f.name, default=None))
            for i, f in enumerate(fields)]
    return msgspec.json.Decoder(msgspec.defstruct("Line", spec, kw_only=True))


def utf8_errors(lines: Sequence[bytes]) -> set[int]:
    """Indexes of the lines that are not UTF-8, checked for the whole chunk at once (msgspec does not
    look inside the keys it skips, so its success alone does not prove a line is UTF-8)."""
    data, bad, start = b"\n".join(lines), set(), 0
    while True:
        try:
            codecs.utf_8_decode(memoryview(data)[start:], "strict", True)
            return bad
        except UnicodeDecodeError as err:
            at = start + err.start
            bad.add(data.count(b"\n", 0, at))
            start = data.find(b"\n", at) + 1
            if not start:
                return bad


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: decoding allocates millions of lists and dicts, which
    would trigger collections that walk them all (4x the decoding time on item metadata)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_jsonl_lines(lines: Sequence[bytes], first: int, name: str, fields: Sequence[Field], table: Table) -> Rows:
    """JSONL lines numbered from `first` as typed rows; blank lines are not rows."""
    fields = tuple(fields)
    decode, not_utf8 = fast_decoder(fields).decode, utf8_errors(lines)
    good: list[Any] = []
    slow: list[int] = []  # indexes of the lines the reference path reads: refused ones, blank ones
    append = good.append
    with gc_paused():
        for i, line in enumerate(lines):
            if i in not_utf8:
                slow.append(i)
                continue
            try:
                append(decode(line))
            except msgspec.MsgspecError:
                slow.append(i)
    numbers = np.delete(np.arange(first, first + len(lines), dtype=np.int64), slow)
    columns = {f.name: list(map(operator.attrgetter(f"f{i}"), good)) for i, f in enumerate(fields)}
    for f in fields:
        if f.kind == "json":
            columns[f.name] = [None if v is None else json_text(v) for v in columns[f.name]]
    # Through Arrow: Polars builds nested columns from Python lists one element at a time.
    frame = pl.from_arrow(pa.table({ORDER: numbers,
                                    **{f.name: pa.array(columns[f.name], ARROW[f.kind]) for f in fields}}))
    # What msgspec accepts but typed_value refuses: a blank required text, a null required JSON value.
    refused = [pl.col(f.name).str.strip_chars() == "" if f.kind == "str" else pl.col(f.name).is_null()
               for f in fields if f.required and f.kind in ("str", "json")]
    if refused and (mask := frame.select(pl.any_horizontal(refused)).to_series()).any():
        slow += [int(numbers[i]) - first for i in mask.arg_true().to_list()]
        frame = frame.filter(~mask)
    records, rejected = [], []
    for i in sorted(slow):
        line, number = lines[i].rstrip(b"\r"), first + i
        if not line.strip():
            continue
        try:
            records.append({ORDER: number, **parse_line(line, fields)})
        except RowError as err:
            payload = line.decode("utf-8", "backslashreplace")
            rejected.append({**rejection(table, "read", f"{name}:{number}", err.reason, err.field, payload),
                             ORDER: number})
    if records:
        frame = pl.concat([frame, pl.DataFrame(records, schema=frame.schema)]).sort(ORDER)
    frame = frame.with_columns(row_ref=pl.format("{}:{}", pl.lit(name), ORDER)).select(chunk_schema(fields).keys())
    return Rows(frame, ordered_quarantine(rejected), frame.height + len(rejected))


def read_csv(data: bytes, name: str, fields: Sequence[Field], table: Table, list_separator: str,
             csv: Csv = Csv()) -> Rows:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(data, final=True)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{name}:{line}: not UTF-8 (byte 0x{data[err.start]:02x})") from None
    if not data.strip():
        raise ValueError(f"{name}: empty file")
    try:
        frame = pl.read_csv(data, infer_schema=False, separator=csv.delimiter, quote_char=csv.quote)
    except pl.exceptions.PolarsError as err:
        raise ValueError(f"{name}: not a readable CSV: {err}") from err
    return typed_columns(frame, name, fields, table, list_separator, 1)


def read_json_array(data: bytes, name: str, fields: Sequence[Field], table: Table) -> Rows:
    """A JSON file holding one array of objects, read as JSON lines (row n: the array's n-th element)."""
    try:
        records = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{name}: not a JSON array: {err}") from None
    if not isinstance(records, list):
        raise ValueError(f"{name}: not a JSON array but a JSON {JSON_TYPES.get(type(records), 'value')}")
    return read_jsonl_lines([msgspec.json.encode(record) for record in records], 1, name, fields, table)


def converted(source: pl.Expr, dtype: pl.DataType, field: Field, list_separator: str) -> pl.Expr:
    """`source` as `field.kind`; null where a present value does not convert."""
    if field.kind == "str_list" and dtype == pl.String:
        return source.str.split(list_separator).list.eval(pl.element().str.strip_chars()).list.filter(
            pl.element() != "")
    if field.kind == "float":
        number = source.cast(pl.Float64, strict=False)
        return pl.when(number.is_finite()).then(number)
    if field.kind == "int" and dtype.is_float():
        return pl.when(source.is_finite() & (source == source.floor())).then(source.cast(pl.Int64))
    return source.cast(DTYPES[field.kind], strict=False)


def got(dtype: pl.DataType, column: str) -> pl.Expr:
    """What a wrong value was, for its quarantine reason: its first 40 characters, or its type."""
    readable = dtype == pl.String or dtype.is_numeric()
    return pl.col(column).cast(pl.String).str.slice(0, 40) if readable else pl.lit(str(dtype))


def typed_columns(frame: pl.DataFrame, name: str, fields: Sequence[Field], table: Table,
                  list_separator: str, first_row: int) -> Rows:
    """Type the columns of a chunk whose first row is number `first_row`; quarantine rows with a
    missing or unconvertible value."""
    missing = [f.name for f in fields if f.name not in frame.columns]
    if missing:
        raise ValueError(f"{name}: no column(s) {missing} (has: {frame.columns})")
    source_columns = frame.columns
    problems, typed = [], {}
    for f in fields:
        source, value = pl.col(f.name), converted(pl.col(f.name), frame.schema[f.name], f, list_separator)
        absent = source.is_null()
        if frame.schema[f.name] == pl.String:
            absent = absent | (source.str.strip_chars() == "")
        problems.append((absent & f.required, ~source.is_null() & value.is_null()))
        typed[f.name] = value
    try:
        frame = frame.with_row_index(ORDER, offset=first_row).with_columns(
            pl.col(ORDER).cast(pl.Int64),
            row_ref=pl.format("{}:{}", pl.lit(name), ORDER),
            _bad=pl.any_horizontal(p for pair in problems for p in pair),
            **{f"_typed_{k}": v for k, v in typed.items()},
        )
    except pl.exceptions.PolarsError as err:
        raise ValueError(f"{name}: a column does not convert to its kind: {err}") from err
    # Reasons are spelled out for the bad rows only: "got ..." casts every value to text.
    reasons = [pl.when(missing).then(pl.lit("missing_field")).when(wrong).then(
        pl.lit(f"wrong_type: expected {f.kind}, got ") + got(frame.schema[f.name], f.name))
        for (missing, wrong), f in zip(problems, fields)]
    bad = frame.filter("_bad").with_columns(
        _reason=pl.coalesce(reasons),
        _field=pl.coalesce(pl.when(r.is_not_null()).then(pl.lit(f.name)) for r, f in zip(reasons, fields)))
    rejected = quarantine_frame(bad.select("row_ref", ORDER, *source_columns, "_reason", "_field"), table, "read",
                                reason=pl.col("_reason"), field=pl.col("_field"))
    good = frame.filter(~pl.col("_bad")).select(
        "row_ref", ORDER, *(pl.col(f"_typed_{f.name}").alias(f.name) for f in fields))
    return Rows(good, rejected, frame.height)
