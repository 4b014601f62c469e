"""The generic plug-in on real-world file shapes (issue 26, point 4), and the one-line failures of a bad
catalog (point 5): each message exact, with its exit code, through the `semrec` command line."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import polars as pl
import pytest
import yaml
import zstandard
from ingest_slices import FILTERS, ingest

from pipelines import catalogs
from pipelines.cli import main as semrec
from serving.errors import _HINTS, REFUSED_HINT, USAGE

ROWS = [  # a drug-review-like file: no user, words for ratings, text dates, HTML entities, the item named twice
    {"drug": "Ibuprofen", "condition": "Pain", "verdict": "Positive", "date": "May 20, 2012",
     "review": "It&#039;s the only thing that helps my back &amp; knees after a long day at work, truly."},
    {"drug": "Ibuprofen", "condition": None, "verdict": "negative", "date": "June 2, 2013",
     "review": "Gave me a stomach ache every single time I took it with or without food, sadly."},
    {"drug": "Sertraline", "condition": "Depression", "verdict": "positive", "date": "January 5, 2015",
     "review": "After six weeks the fog lifted and I could finally enjoy my mornings again, honestly."},
    {"drug": "Sertraline", "condition": "Anxiety", "verdict": "mixed", "date": "March 3, 2016",
     "review": "Some days are better than others and the side effects come and go over the months."},
    {"drug": "Loratadine", "condition": "Allergies", "verdict": "positive", "date": "the 4th of July",
     "review": "Clears up my hay fever in under an hour and never makes me drowsy at all, recommended."},
]
COLUMNS = {"item_id": "drug", "rating": "verdict", "timestamp": "date", "text": "review"}
RATINGS = {"positive": 5, "neutral": 3, "negative": 1}
ITEMS = {"from": "interactions", "columns": {"item_id": "drug", "title": "drug", "categories": "condition"},
         "document": ["title", "categories"]}


def every_rating(options: dict) -> dict:
    """An ingest section with catalog `drugs` whose filters keep every rating (the rules are tested elsewhere)."""
    return {"engine": "polars", "filters": {**FILTERS, "min_rating": 1}, "catalogs": {"drugs": options}}


def drugs(**interactions) -> dict:
    spec = {"columns": COLUMNS, "rating_map": RATINGS, "timestamp_format": "%B %d, %Y", **interactions}
    return {"plugin": "generic", "interactions": spec, "items": ITEMS}


def tsv(rows: list[dict] = ROWS, delimiter: str = "\t", quote: str = '"') -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame(rows).write_csv(buffer, separator=delimiter, quote_char=quote, quote_style="always")
    return buffer.getvalue()


def jsonl(rows: list[dict] = ROWS) -> bytes:
    """JSON lines, a list field (condition) as a JSON list as JSONL files hold them."""
    buffer = io.BytesIO()
    pl.DataFrame(rows).with_columns(pl.concat_list("condition").list.drop_nulls()).write_ndjson(buffer)
    return buffer.getvalue()


def zipped(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return path


def test_a_tsv_inside_a_zip_with_text_ratings_dates_and_no_item_table(tmp_path):
    source = zipped(tmp_path / "drugs.zip", "reviews.tsv", tsv())
    result = ingest("drugs", source, every_rating(drugs(member="reviews.tsv")))
    assert result.items.select(["item_id", "title", "categories", "document"]).to_pylist() == [
        {"item_id": "Ibuprofen", "title": "Ibuprofen", "categories": ["Pain"], "document": "Ibuprofen [SEP] Pain"},
        {"item_id": "Sertraline", "title": "Sertraline", "categories": ["Depression"],
         "document": "Sertraline [SEP] Depression"},
        {"item_id": "Loratadine", "title": "Loratadine", "categories": ["Allergies"],
         "document": "Loratadine [SEP] Allergies"}]
    kept = result.interactions.to_pylist()
    assert [(r["row_ref"], r["rating"], r["timestamp"]) for r in kept] == [
        ("reviews.tsv:1", 5.0, 1337472000), ("reviews.tsv:2", 1.0, 1370131200), ("reviews.tsv:3", 5.0, 1420416000)]
    assert kept[0]["text"].startswith("It's the only thing that helps my back & knees")  # entities unescaped
    reasons = dict(zip(result.quarantine["row_ref"].to_pylist(), result.quarantine["reason"].to_pylist()))
    assert reasons == {
        "reviews.tsv:4": "unmapped_rating: expected one of ['negative', 'neutral', 'positive'], got mixed",
        "reviews.tsv:5": "bad_timestamp: expected %B %d, %Y, got the 4th of July"}
    assert result.quarantine["field"].to_pylist() == ["verdict", "date"]


def test_html_entities_stay_when_unescaping_is_off(tmp_path):
    source = zipped(tmp_path / "drugs.zip", "reviews.tsv", tsv())
    result = ingest("drugs", source, every_rating({**drugs(member="reviews.tsv"), "unescape_html": False}))
    assert result.interactions["text"].to_pylist()[0].startswith("It&#039;s the only thing")


@pytest.mark.parametrize("name, data, spec", [
    ("reviews.jsonl.gz", gzip.compress(jsonl()), {}),
    ("reviews.csv.zst", zstandard.ZstdCompressor().compress(tsv(delimiter=";", quote="'")),
     {"delimiter": ";", "quote": "'"}),
    ("reviews.txt", tsv(delimiter="|"), {"format": "csv", "delimiter": "|"}),
    ("reviews.tsv", tsv(), {}),
])
def test_every_file_shape_reads_the_same_rows(tmp_path, name, data, spec):
    (tmp_path / name).write_bytes(data)
    expected = ingest("drugs", zipped(tmp_path / "drugs.zip", "reviews.tsv", tsv()),
                      every_rating(drugs(member="reviews.tsv")))
    result = ingest("drugs", tmp_path, every_rating(drugs(path=name, **spec)))
    assert result.items.equals(expected.items)
    assert result.interactions.drop_columns("row_ref").equals(expected.interactions.drop_columns("row_ref"))
    assert result.interactions["row_ref"].to_pylist() == [f"{name}:{n}" for n in (1, 2, 3)]


def test_a_parquet_member_of_a_zip_and_a_file_source(tmp_path):
    buffer = io.BytesIO()
    pl.DataFrame(ROWS).write_parquet(buffer)
    source = zipped(tmp_path / "drugs.zip", "reviews.parquet", buffer.getvalue())
    parquet = ingest("drugs", source, every_rating(drugs(member="reviews.parquet")))
    (tmp_path / "reviews.tsv").write_bytes(tsv())  # a file source: the spec names no path
    single = ingest("drugs", tmp_path / "reviews.tsv", every_rating(drugs()))
    assert parquet.items.equals(single.items)
    assert parquet.interactions.drop_columns("row_ref").equals(single.interactions.drop_columns("row_ref"))


def test_the_beam_engine_reads_a_zip_member_identically(tmp_path):
    source = zipped(tmp_path / "drugs.zip", "reviews.tsv", tsv())
    params = every_rating(drugs(member="reviews.tsv"))
    polars, beam = (ingest("drugs", source, params, engine) for engine in ("polars", "beam"))
    for name in ("items", "interactions", "quarantine"):
        assert getattr(polars, name).equals(getattr(beam, name)), name


# --- failures: one line, the params key named, exit 2 (config) or 1 (refused) -----------------------------

def run(tmp_path: Path, capsys, block: dict, *argv: str) -> tuple[int, list[str]]:
    """`semrec ingest` (or `argv`) with a params.yaml holding the ingest section and catalog `drugs`."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"ingest": {"engine": "polars", "filters": FILTERS, "min_kept_fraction": 0.05},
                                      "catalogs": {"drugs": block}}))
    code = semrec(list(argv or ("ingest", "--catalog", "drugs", "--out", str(tmp_path / "out"))) +
                  ["--params", str(params)])
    return code, capsys.readouterr().err.splitlines()


def usage(message: str) -> list[str]:
    return [f"semrec ingest: {message}; {_HINTS[USAGE]}"]


@pytest.fixture
def source(tmp_path) -> str:
    return str(zipped(tmp_path / "drugs.zip", "reviews.tsv", tsv()))


@pytest.mark.parametrize("change, message", [
    ({"interactions": {"member": "reviews.tsv", "columns": {"item_id": "drug"}}},
     "catalogs.drugs.ingest.interactions.columns: map the required field(s) ['rating']"),
    ({"interactions": {"member": "reviews.tsv", "columns": COLUMNS, "seperator": ";"}},
     "catalogs.drugs.ingest.interactions: unknown key(s) ['seperator']; expected some of ['columns', 'delimiter', "
     "'format', 'member', 'path', 'quote', 'rating_map', 'rating_scale', 'timestamp_format']"),
    ({"interactions": {"member": "reviews.tsv", "columns": COLUMNS, "format": "xlsx"}},
     "catalogs.drugs.ingest.interactions.format: 'xlsx' is not one of ['jsonl', 'json', 'csv', 'parquet']"),
    ({"interactions": {"member": "reviews.tsv", "columns": COLUMNS, "delimiter": ";;"}},
     "catalogs.drugs.ingest.interactions.delimiter: expected one character, not ';;'"),
    ({"interactions": {"member": "reviews.xlsx", "columns": COLUMNS}},
     "catalogs.drugs.ingest.interactions: reviews.xlsx: unsupported format '.xlsx' (expected .jsonl, .ndjson, .json, "
     ".csv, .tsv or .parquet, optionally compressed; or name the format)"),
    ({"interactions": {"member": "reviews.tsv", "columns": COLUMNS, "rating_map": {"positive": "five"}}},
     "catalogs.drugs.ingest.interactions.rating_map: expected a mapping of text -> number, not {'positive': 'five'}"),
    ({"items": {**ITEMS, "columns": {"item_id": "drug", "title": "drug", "year": "drug"}, "document": ["title"]}},
     "catalogs.drugs.ingest.items.columns: column 'drug' feeds fields of different kinds ['int', 'str']"),
    ({"items": {**ITEMS, "from": "products"}},
     "catalogs.drugs.ingest.items.from: 'products'; the only table items can come from is 'interactions'"),
    ({"colour": "blue"},
     "catalogs.drugs.ingest: unknown option(s) ['colour']; expected ['document_max_chars', 'interactions', "
     "'items', 'list_separator', 'unescape_html']"),
])
def test_a_mapping_mistake_is_one_line_naming_the_key_exit_2(tmp_path, capsys, source, change, message):
    options = {**drugs(member="reviews.tsv"), **change}
    assert run(tmp_path, capsys, {"source": source, "ingest": options}) == (2, usage(message))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("block, message", [
    ({"ingest": {}, "colour": "blue"}, "catalogs.drugs: unknown key(s) ['colour']; expected ['source', 'ingest', "
                                       "'pairs', 'train']"),
    ({"ingest": {"plugin": "generic"}}, "catalogs.drugs: missing key(s) ['source']"),
    ({"source": ".", "ingest": {"plugin": "excel"}},
     "catalogs.drugs.ingest.plugin: 'excel' is not one of ['amazon2023', 'generic', 'movielens_wikidata', 'tmdb', "
     "'womens_clothing']"),
])
def test_a_catalog_block_mistake_is_one_line_exit_2(tmp_path, capsys, block, message):
    assert run(tmp_path, capsys, block) == (2, usage(message))


def test_a_missing_source_file_names_the_catalog_exit_2(tmp_path, capsys, source):
    assert run(tmp_path, capsys, {"source": source, "ingest": drugs(member="reveiws.tsv")}) == (2, usage(
        f"catalogs.drugs: reveiws.tsv: no such file zip://reveiws.tsv::{source} (source: {source})"))


def test_ratings_as_words_without_a_map_refuse_the_catalog_exit_1(tmp_path, capsys, source):
    spec = {"member": "reviews.tsv", "columns": COLUMNS, "timestamp_format": "%B %d, %Y"}
    out = tmp_path / "out"
    out.mkdir()
    (out / "items.parquet").write_bytes(b"the last good output")
    code, err = run(tmp_path, capsys, {"source": source, "ingest": {**drugs(), "interactions": spec}})
    assert (code, err) == (1, [
        "semrec ingest: ingest drugs: fewer than ingest.min_kept_fraction 0.05 of the interactions survived (kept 0 "
        "of 5 interactions); top quarantine reason wrong_type (5 rows), e.g. reviews.tsv:1 field verdict: wrong_type: "
        f"expected float, got Positive; {REFUSED_HINT}"])
    assert (out / "items.parquet").read_bytes() == b"the last good output"  # nothing already written is lost
    assert sorted(p.name for p in out.iterdir()) == ["items.parquet"]


def test_a_catalog_without_a_usable_item_is_refused_exit_1(tmp_path, capsys):
    rows = [{**row, "drug": row["drug"], "name": " "} for row in ROWS]
    source = zipped(tmp_path / "drugs.zip", "reviews.tsv", tsv(rows))
    items = {**ITEMS, "columns": {"item_id": "drug", "title": "name"}, "document": ["title"]}
    code, err = run(tmp_path, capsys, {"source": str(source), "ingest": {**drugs(member="reviews.tsv"),
                                                                          "items": items}})
    assert (code, err) == (1, [
        "semrec ingest: ingest drugs: no usable item survived (kept 0 of 3 items); top quarantine reason "
        "missing_title (3 rows), e.g. reviews.tsv:1 field title: missing_title; " + REFUSED_HINT])


def test_catalog_check_reads_the_first_rows_and_names_every_reason(tmp_path, capsys, source):
    block = {"source": source, "ingest": drugs(member="reviews.tsv")}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"ingest": {"engine": "polars", "filters": {**FILTERS, "min_rating": 1},
                                                 "min_kept_fraction": 0.05}, "catalogs": {"drugs": block}}))
    assert semrec(["catalog", "check", "drugs", "--rows", "4", "--params", str(params)]) == 0
    out = capsys.readouterr().out
    assert "drugs interactions: raw 4 -> read 3 -> rating 3" in out
    assert ("  interactions/read unmapped_rating: 1, e.g. reviews.tsv:4 field verdict: unmapped_rating: expected one "
            "of ['negative', 'neutral', 'positive'], got mixed") in out
    assert "bad_timestamp" not in out  # row 5 lies past the first 4
    assert '"item_id": "Ibuprofen", "catalog": "drugs", "title": "Ibuprofen"' in out
    assert out.rstrip().endswith("verdict: ok")
    block["ingest"]["interactions"].pop("rating_map")
    params.write_text(yaml.safe_dump({"ingest": {"engine": "polars", "filters": FILTERS, "min_kept_fraction": 0.05},
                                      "catalogs": {"drugs": block}}))
    assert semrec(["catalog", "check", "drugs", "--params", str(params)]) == 1
    assert "verdict: ingest would refuse: ingest drugs: fewer than" in capsys.readouterr().out


def test_plan_accepts_one_column_as_both_id_and_title(tmp_path):
    source = zipped(tmp_path / "drugs.zip", "reviews.tsv", tsv())
    plan = catalogs.plan("drugs", str(source), drugs(member="reviews.tsv"))
    assert [f.name for f in plan.interactions.fields] == ["drug", "verdict", "date", "review"]
    assert plan.interactions.location == f"zip://reviews.tsv::{source}"


def test_a_source_on_s3_reads_like_a_local_one(tmp_path, s3_root):
    import fsspec

    bucket = s3_root.removeprefix("s3://").split("/")[0]
    with fsspec.open(f"s3://{bucket}/sources/reviews.tsv.gz", "wb") as f:
        f.write(gzip.compress(tsv()))
    remote = ingest("drugs", f"s3://{bucket}/sources", every_rating(drugs(path="reviews.tsv.gz")))
    (tmp_path / "reviews.tsv.gz").write_bytes(gzip.compress(tsv()))
    local = ingest("drugs", tmp_path, every_rating(drugs(path="reviews.tsv.gz")))
    for name in ("items", "interactions", "quarantine"):
        assert getattr(remote, name).equals(getattr(local, name)), name


def test_a_json_array_reads_as_json_lines_numbered_by_element(tmp_path):
    (tmp_path / "reviews.json").write_bytes(b"[" + jsonl().strip().replace(b"\n", b",\n") + b"]")
    (tmp_path / "reviews.jsonl").write_bytes(jsonl())
    array, lines = (ingest("drugs", tmp_path, every_rating(drugs(path=name))) for name in ("reviews.json", "reviews.jsonl"))
    assert array.items.equals(lines.items)
    assert array.interactions.drop_columns("row_ref").equals(lines.interactions.drop_columns("row_ref"))
    assert array.interactions["row_ref"].to_pylist() == ["reviews.json:1", "reviews.json:2", "reviews.json:3"]


def test_ratings_on_another_scale_are_rescaled_to_the_filters_scale(tmp_path):
    rows = [{**row, "verdict": str(score)} for row, score in zip(ROWS, (10, 1, 8, 11, 5.5))]
    (tmp_path / "reviews.tsv").write_bytes(tsv(rows))
    spec = {"columns": COLUMNS, "rating_scale": [1, 10], "timestamp_format": "%B %d, %Y"}
    result = ingest("drugs", tmp_path / "reviews.tsv", every_rating({**drugs(), "interactions": spec}))
    assert result.interactions["rating"].to_pylist() == pytest.approx([5.0, 1.0, 1 + 4 * 7 / 9])  # row 5: its date
    assert [r for r in result.quarantine["reason"].to_pylist() if r.startswith("rating_")] == [
        "rating_out_of_scale: expected 1 to 10, got 11.0"]
