"""Bad input: every malformed row lands in quarantine with file, line and field named, and input
that cannot be read at all is an error naming the file (and line)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from pipelines.catalogs.readers import Field, read
from pipelines.catalogs.source import check_items

FIELDS = [Field("id", required=True), Field("rating", "float", required=True), Field("year", "int"),
          Field("tags", "str_list")]
GOOD = {"id": "a", "rating": 4.5, "year": 2001, "tags": ["x", "y"]}


def quarantined(rows) -> list[tuple[str, str | None, str]]:
    return list(zip(rows.rejected["row_ref"].to_pylist(), rows.rejected["field"].to_pylist(),
                    rows.rejected["reason"].to_pylist()))


def test_each_bad_jsonl_line_is_quarantined_with_line_field_and_reason(tmp_path):
    lines = [
        json.dumps(GOOD).encode(),
        b'{"id": "b", "rating": 4.0',  # cut short
        json.dumps({**GOOD, "id": None}).encode(),
        json.dumps({k: v for k, v in GOOD.items() if k != "rating"}).encode(),
        json.dumps({**GOOD, "rating": "4.5"}).encode(),
        json.dumps({**GOOD, "year": True}).encode(),
        b'{"id": "c", "rating": NaN}',
        json.dumps({**GOOD, "tags": "x|y"}).encode(),
        '{"id": "caf\u00e9", "rating": 5.0}'.encode("latin-1"),
        b"[1, 2]",
        b"   ",
        json.dumps({**GOOD, "id": "d", "extra": {"ignored": True}}).encode(),
    ]
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    rows = read(path, "rows.jsonl", FIELDS, "items")
    assert rows.count == 11  # the blank line is not a row
    assert rows.frame["row_ref"].to_list() == ["rows.jsonl:1", "rows.jsonl:12"]
    assert rows.frame.row(0, named=True) == {"row_ref": "rows.jsonl:1", **GOOD}
    reasons = quarantined(rows)
    assert [(ref, field, reason.split(":")[0]) for ref, field, reason in reasons] == [
        ("rows.jsonl:2", None, "not_json"),
        ("rows.jsonl:3", "id", "missing_field"),
        ("rows.jsonl:4", "rating", "missing_field"),
        ("rows.jsonl:5", "rating", "wrong_type"),
        ("rows.jsonl:6", "year", "wrong_type"),
        ("rows.jsonl:7", "rating", "wrong_type"),
        ("rows.jsonl:8", "tags", "wrong_type"),
        ("rows.jsonl:9", None, "not_utf8"),
        ("rows.jsonl:10", None, "not_object"),
    ]
    assert "expected float, got string" in reasons[3][2]
    assert "byte 0xe9" in reasons[7][2]
    payloads = rows.rejected["payload"].to_pylist()
    assert payloads[7] == '{"id": "caf\\xe9", "rating": 5.0}'  # the raw line, bad byte escaped
    assert set(rows.rejected["source"].to_pylist()) == {"items/read"}


def test_a_line_not_utf8_only_in_a_field_not_read_is_quarantined(tmp_path):
    """msgspec skips the fields it does not read without decoding them: the UTF-8 check is the reader's."""
    good = json.dumps(GOOD).encode()
    lines = [good, good[:-1] + b', "other": "caf\xe9"}', b"\r", good + b"\r", good[:-1] + b', "x": "\xff"}']
    (tmp_path / "rows.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    rows = read(tmp_path / "rows.jsonl", "rows.jsonl", FIELDS, "items")
    assert rows.frame["row_ref"].to_list() == ["rows.jsonl:1", "rows.jsonl:4"]
    assert [(ref, reason) for ref, _, reason in quarantined(rows)] == [
        ("rows.jsonl:2", "not_utf8: byte 0xe9 at column 75"), ("rows.jsonl:5", "not_utf8: byte 0xff at column 68")]


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_jsonl_is_an_error_naming_the_file(tmp_path, content):
    (tmp_path / "empty.jsonl").write_bytes(content)
    with pytest.raises(ValueError, match="empty.jsonl: empty file"):
        read(tmp_path / "empty.jsonl", "empty.jsonl", FIELDS, "items")


def test_csv_values_are_typed_and_bad_ones_quarantined(tmp_path):
    (tmp_path / "rows.csv").write_text(
        "id,rating,year,tags\n"
        "a,4.5,2001,x|y\n"
        ",4.0,2002,x\n"
        "c,four,2003,\n"
        "d,5,19.5,x\n"
        '"e",3,,"multi\nline"\n'
        "f,nan,2004,z\n")
    rows = read(tmp_path / "rows.csv", "rows.csv", FIELDS, "interactions")
    assert rows.count == 6
    assert rows.frame.to_dicts() == [
        {"row_ref": "rows.csv:1", **GOOD},
        {"row_ref": "rows.csv:5", "id": "e", "rating": 3.0, "year": None, "tags": ["multi\nline"]},
    ]
    assert [(ref, field, reason.split(":")[0]) for ref, field, reason in quarantined(rows)] == [
        ("rows.csv:2", "id", "missing_field"), ("rows.csv:3", "rating", "wrong_type"),
        ("rows.csv:4", "year", "wrong_type"), ("rows.csv:6", "rating", "wrong_type")]
    assert json.loads(rows.rejected["payload"][1].as_py()) == {"id": "c", "rating": "four", "year": "2003",
                                                                "tags": None}


def test_unreadable_csv_is_an_error_naming_file_and_line(tmp_path):
    (tmp_path / "latin.csv").write_bytes("id,rating\na,4\ncaf\u00e9,5\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.csv:3: not UTF-8 \(byte 0xe9\)"):
        read(tmp_path / "latin.csv", "latin.csv", FIELDS[:2], "items")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.csv: empty file"):
        read(tmp_path / "empty.csv", "empty.csv", FIELDS[:2], "items")
    (tmp_path / "header.csv").write_text("id,rating\n")
    with pytest.raises(ValueError, match="header.csv: empty file"):
        read(tmp_path / "header.csv", "header.csv", FIELDS[:2], "items")
    (tmp_path / "narrow.csv").write_text("id,score\na,4\n")
    with pytest.raises(ValueError, match=r"narrow.csv: no column\(s\) \['rating'\]"):
        read(tmp_path / "narrow.csv", "narrow.csv", FIELDS[:2], "items")


def test_parquet_float_years_convert_only_when_whole(tmp_path):
    pl.DataFrame({"id": ["a", "b"], "rating": [4.0, float("inf")], "year": [1995.0, 1995.5],
                  "tags": [["x"], None]}).write_parquet(tmp_path / "rows.parquet")
    rows = read(tmp_path / "rows.parquet", "rows.parquet", FIELDS, "items")
    assert rows.frame.to_dicts() == [{"row_ref": "rows.parquet:1", "id": "a", "rating": 4.0, "year": 1995,
                                      "tags": ["x"]}]
    assert [(ref, field) for ref, field, _ in quarantined(rows)] == [("rows.parquet:2", "rating")]
    with pytest.raises(ValueError, match="unsupported format '.txt'"):
        (tmp_path / "rows.txt").write_text("x")
        read(tmp_path / "rows.txt", "rows.txt", FIELDS, "items")


def test_items_without_title_and_duplicate_ids_are_quarantined():
    items = pl.DataFrame({
        "row_ref": ["m:1", "m:2", "m:3", "m:4", "m:5"],
        "item_id": ["a", "b", "a", "c", "c"],
        "title": ["First", "  ", "Again", None, "Titled"],
        "document": ["First", "x", "Again", "y", "Titled"],
    })
    kept, quarantine = check_items(items, "shop")
    assert kept["item_id"].to_pylist() == ["a", "c"]
    assert kept["title"].to_pylist() == ["First", "Titled"]
    assert list(zip(quarantine["source"].to_pylist(), quarantine["row_ref"].to_pylist(),
                    quarantine["field"].to_pylist(), quarantine["reason"].to_pylist())) == [
        ("items/title", "m:2", "title", "missing_title"),
        ("items/title", "m:4", "title", "missing_title"),
        ("items/unique", "m:3", "item_id", "duplicate_item_id: first at m:1"),
    ]
