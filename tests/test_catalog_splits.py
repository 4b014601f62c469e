"""Splits: however a JSONL file is cut, every line is read once, by one split, with its own number."""

from __future__ import annotations

import pytest

from pipelines.catalogs import splits
from pipelines.catalogs.files import open_source

LINES = [b'{"a": 1}', b"", b'{"a": "two"}\r', b"   ", b'{"a": [3, 3, 3, 3, 3, 3]}', b"x" * 40, b"{}"]


@pytest.mark.parametrize("split_bytes", [1, 2, 3, 5, 7, 11, 64, 10_000])
@pytest.mark.parametrize("trailing_newline", [True, False])
def test_every_line_is_owned_by_one_split_with_its_number(tmp_path, split_bytes, trailing_newline):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\n".join(LINES) + (b"\n" if trailing_newline else b""))
    planned = splits.plan(str(path), "rows.jsonl", path.stat().st_size, open_source, split_bytes)
    numbered = splits.numbered(planned, [splits.newlines(s, open_source) for s in planned])
    read = []
    for split in numbered:
        first, lines = splits.owned_lines(split, open_source)
        read += list(enumerate(lines, start=first))
    assert read == list(enumerate(LINES, start=1))


def test_parquet_splits_are_row_groups_numbered_from_the_footer(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"a": list(range(10))}), tmp_path / "rows.parquet", row_group_size=4)
    planned = splits.plan(str(tmp_path / "rows.parquet"), "rows.parquet", 0, open_source, 1)
    assert [(s.start, s.first_row) for s in planned] == [(0, 1), (1, 5), (2, 9)]
    with pytest.raises(ValueError, match=r"rows.txt: unsupported format '.txt'"):
        splits.plan(str(tmp_path / "rows.txt"), "rows.txt", 0, open_source, 1)
