"""`semrec ingest` end to end on a real slice: the files, the counts, nothing lost, nothing half-written."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml
from ingest_slices import ROOT, real_raw_slice

from pipelines.catalogs.source import quarantine_table, rejection
from pipelines.common.params import ParamsError, load_section
from pipelines.ingest import stage as ingest
from pipelines.ingest.filters import TOKEN_PATTERN

OUTPUTS = ("items.parquet", "interactions.parquet", "quarantine.parquet", "counts.json")


@pytest.fixture
def stage(tmp_path):
    raw = real_raw_slice(tmp_path / "raw", ratings=1000, reviews=1500, rerated=50)
    params = tmp_path / "params.yaml"
    sections = ("ingest", "catalogs")  # ingest's section and the catalog blocks
    params.write_text(yaml.safe_dump({name: load_section(name, ROOT / "params.yaml") for name in sections}))
    return raw, params, tmp_path / "out"


def run(catalog: str, raw, params, out, *options: str) -> int:
    return ingest.main(["--catalog", catalog, "--source", str(raw), "--out", str(out), "--params", str(params),
                        *options])


def test_outputs_account_for_every_raw_row(stage, capsys):
    raw, params, out = stage
    assert run("fashion", raw, params, out) == 0
    assert "fashion interactions: raw 1,500 -> read 1,500 -> rating" in capsys.readouterr().out
    counts = json.loads((out / "counts.json").read_text())
    items, interactions, quarantine = (pl.read_parquet(out / name) for name in OUTPUTS[:3])
    reviews = pl.read_parquet(raw / "womens_clothing_reviews.parquet")
    table = quarantine["source"].str.split("/").list.first()
    assert counts["interactions"]["raw"] == reviews.height == interactions.height + (table == "interactions").sum()
    assert counts["items"]["raw"] == reviews["Clothing ID"].n_unique() == items.height + (table == "items").sum()
    # every quarantined review once, and together with the kept ones: each raw row exactly once
    refs = pl.concat([interactions["row_ref"], quarantine.filter(table == "interactions")["row_ref"]])
    assert refs.is_unique().all() and refs.len() == reviews.height
    assert counts["interactions"]["reasons"] == dict(sorted(
        quarantine.filter(table == "interactions")["reason"].str.split(":").list.first().value_counts().rows()))
    # what was kept passes the rules
    assert interactions["rating"].min() >= 4 and interactions["item_id"].is_in(items["item_id"].implode()).all()
    tokens = (interactions["summary"].str.count_matches(TOKEN_PATTERN).fill_null(0)
              + interactions["text"].str.count_matches(TOKEN_PATTERN).fill_null(0))
    assert ((tokens == 0) | (tokens >= 5)).all()


def test_a_failing_run_leaves_the_previous_outputs_untouched(stage):
    raw, params, out = stage
    run("movies", raw, params, out)
    before = {name: (out / name).read_bytes() for name in OUTPUTS}
    (raw / "omdb_movies.db").unlink()
    with pytest.raises(ParamsError, match="catalogs.movies: omdb_movies.db: no such file") as err:
        run("movies", raw, params, out)
    assert isinstance(err.value.__cause__, FileNotFoundError)
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)  # no temp files left behind


def test_counts_refuse_rows_that_went_missing():
    quarantine = quarantine_table([rejection("interactions", "rating", "f:1", "rating_below_min"),
                                   rejection("items", "title", "m:1", "missing_title")])
    counts = ingest.table_counts("interactions", 3, 2, ingest.tally(pl.from_arrow(quarantine)))
    assert counts["after"] == {"1_read": 3, "2_rating": 2, "3_tokens": 2, "4_item": 2, "5_language": 2,
                               "6_duplicate": 2, "7_user_positives": 2}
    assert counts["reasons"] == {"rating_below_min": 1}
    with pytest.raises(RuntimeError, match=r"interactions: 3 raw rows but 1 kept \+ 1 quarantined"):
        ingest.table_counts("interactions", 3, 1, ingest.tally(pl.from_arrow(quarantine)))
    with pytest.raises(ValueError, match=r"unknown step\(s\) \['cleanup'\]"):
        ingest.table_counts("items", 1, 0, ingest.tally(pl.from_arrow(
            quarantine_table([rejection("items", "cleanup", "m:2", "gone")]))))


def test_beam_options_pass_through_and_an_unknown_one_is_an_error(stage, capsys):
    raw, params, out = stage
    assert ingest.main(["--catalog", "fashion", "--source", str(raw), "--out", str(out), "--params", str(params),
                        "--engine", "beam", "--runner", "FnApiRunner", "--direct_num_workers", "2",
                        "--direct_running_mode", "multi_processing"]) == 0
    assert "fashion interactions: raw 1,500" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"Beam does not know option\(s\) --direct_num_wrkers"):
        run("fashion", raw, params, out, "--engine", "beam", "--direct_num_wrkers", "2")
    with pytest.raises(SystemExit):  # Beam options without the Beam engine: argparse's usage error
        run("fashion", raw, params, out, "--runner", "FnApiRunner")
    assert "Beam options need --engine beam" in capsys.readouterr().err
