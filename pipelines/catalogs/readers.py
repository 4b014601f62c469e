"""Read a source file into typed columns; every row that cannot be read goes to quarantine.

JSONL is read line by line: a line that is not UTF-8, not JSON, not an object, lacks a required
field or has a value of the wrong type is quarantined with the file and line in `row_ref`. CSV and
Parquet are read whole and typed column by column: a value that does not convert, or a missing
required one, quarantines its row (row numbers count data rows from 1). An empty file, a CSV that
is not UTF-8 or a missing column is an error naming the file (and line), since no row can be read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from pipelines.catalogs.source import Table, quarantine_frame, quarantine_table, rejection

Kind = Literal["str", "float", "int", "str_list", "json"]
DTYPES: dict[str, pl.DataType] = {
    "str": pl.String(), "float": pl.Float64(), "int": pl.Int64(), "str_list": pl.List(pl.String()),
    "json": pl.String(),  # any JSON value, kept as JSON text
}
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


@dataclass(frozen=True)
class Field:
    name: str  # the source's field / column name
    kind: Kind = "str"
    required: bool = False


@dataclass(frozen=True)
class Rows:
    frame: pl.DataFrame  # row_ref, then one typed column per field
    rejected: pa.Table  # QUARANTINE
    count: int  # rows in the file

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


def read(path: Path, name: str, fields: Sequence[Field], table: Table, list_separator: str = "|") -> Rows:
    """Read `path` (.jsonl, .csv or .parquet); `name` is how row_refs name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path, name, fields, table)
    if suffix == ".csv":
        return read_csv(path, name, fields, table, list_separator)
    if suffix == ".parquet":
        return typed_columns(pl.read_parquet(path), name, fields, table, list_separator)
    raise ValueError(f"{name}: unsupported format {suffix!r} (expected .jsonl, .csv or .parquet)")


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
    return json.dumps(value, ensure_ascii=False) if kind == "json" else value


def parse_line(line: bytes, fields: Sequence[Field]) -> dict[str, Any]:
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


def read_jsonl(path: Path, name: str, fields: Sequence[Field], table: Table) -> Rows:
    records, rejected, count = [], [], 0
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue  # a blank line is not a row
            count += 1
            row_ref = f"{name}:{number}"
            try:
                records.append({"row_ref": row_ref, **parse_line(line.rstrip(b"\r\n"), fields)})
            except RowError as err:
                payload = line.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
                rejected.append(rejection(table, "read", row_ref, err.reason, err.field, payload))
    if not count:
        raise ValueError(f"{name}: empty file (no JSON lines)")
    schema = {"row_ref": pl.String(), **{f.name: DTYPES[f.kind] for f in fields}}
    return Rows(pl.DataFrame(records, schema=schema), quarantine_table(rejected), count)


def read_csv(path: Path, name: str, fields: Sequence[Field], table: Table, list_separator: str) -> Rows:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{name}:{line}: not UTF-8 (byte 0x{data[err.start]:02x})") from None
    if not data.strip():
        raise ValueError(f"{name}: empty file")
    try:
        frame = pl.read_csv(data, infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise ValueError(f"{name}: not a readable CSV: {err}") from err
    return typed_columns(frame, name, fields, table, list_separator)


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


def typed_columns(frame: pl.DataFrame, name: str, fields: Sequence[Field], table: Table,
                  list_separator: str) -> Rows:
    """Type the columns of a whole table; quarantine rows with a missing or unconvertible value."""
    if frame.height == 0:
        raise ValueError(f"{name}: empty file (no rows)")
    missing = [f.name for f in fields if f.name not in frame.columns]
    if missing:
        raise ValueError(f"{name}: no column(s) {missing} (has: {frame.columns})")
    source_columns = frame.columns
    problems = []
    typed = {}
    for f in fields:
        source, value = pl.col(f.name), converted(pl.col(f.name), frame.schema[f.name], f, list_separator)
        absent = source.is_null()
        if frame.schema[f.name] == pl.String:
            absent = absent | (source.str.strip_chars() == "")
        dtype = frame.schema[f.name]
        got = source.cast(pl.String).str.slice(0, 40) if dtype == pl.String or dtype.is_numeric() else pl.lit(str(dtype))
        problems.append(pl.when(absent & f.required).then(pl.lit("missing_field"))
                        .when(~source.is_null() & value.is_null())
                        .then(pl.lit(f"wrong_type: expected {f.kind}, got ") + got))
        typed[f.name] = value
    try:
        frame = frame.with_row_index("_row", offset=1).with_columns(
            row_ref=pl.format("{}:{}", pl.lit(name), "_row"),
            _reason=pl.coalesce(problems),
            _field=pl.coalesce(pl.when(p.is_not_null()).then(pl.lit(f.name)) for p, f in zip(problems, fields)),
            **{f"_typed_{k}": v for k, v in typed.items()},
        )
    except pl.exceptions.PolarsError as err:
        raise ValueError(f"{name}: a column does not convert to its kind: {err}") from err
    bad = frame.filter(pl.col("_reason").is_not_null())
    rejected = quarantine_frame(bad.select("row_ref", *source_columns, "_reason", "_field"), table, "read",
                                reason=pl.col("_reason"), field=pl.col("_field"))
    good = frame.filter(pl.col("_reason").is_null()).select(
        "row_ref", *(pl.col(f"_typed_{f.name}").alias(f.name) for f in fields))
    return Rows(good, rejected, frame.height)
