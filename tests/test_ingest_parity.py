"""The Polars and Beam engines give identical output: on real data slices (Beam with 1 and 2 worker
processes), on the Amazon fixture (which exercises every rule: language, duplicates, users with too
few positives), and on a file cut into many splits with a malformed line in the middle."""

from __future__ import annotations

import json

import pytest
from ingest_slices import FIXTURES, ROOT, ingest, ingest_params, real_raw_slice

from pipelines.common.params import load_section
from pipelines.ingest import stage

BUNDLED = {key: block["ingest"] for key, block in load_section("catalogs", ROOT / "params.yaml").items()}
TWO_WORKERS = ["--runner", "FnApiRunner", "--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]


@pytest.fixture(scope="module")
def real_raw(tmp_path_factory):
    return real_raw_slice(tmp_path_factory.mktemp("raw"))


def assert_same(polars, beam):
    assert polars.counts == beam.counts
    assert polars.items.equals(beam.items)
    assert polars.interactions.equals(beam.interactions)
    assert polars.quarantine.equals(beam.quarantine)


@pytest.mark.parametrize("catalog, beam_args", [("movies", []), ("fashion", []), ("fashion", TWO_WORKERS)])
def test_engines_agree_on_real_slices(real_raw, catalog, beam_args):
    params = ingest_params(catalog, BUNDLED[catalog])
    polars, beam = ingest(catalog, real_raw, params, "polars"), ingest(catalog, real_raw, params, "beam", beam_args)
    assert_same(polars, beam)
    # The slice reaches the rules it is meant to test.
    expected = {"movies": {"rating_below_min", "unknown_item", "duplicate_user_item", "too_few_user_positives"},
                "fashion": {"rating_below_min", "too_few_tokens"}}[catalog]
    assert set(polars.counts["interactions"]["reasons"]) >= expected


def test_engines_agree_on_the_amazon_fixture():
    params = ingest_params("beauty", {"plugin": "amazon2023", "category": "All_Beauty"})
    polars, beam = (ingest("beauty", FIXTURES / "amazon2023", params, engine) for engine in ("polars", "beam"))
    assert_same(polars, beam)
    assert set(polars.counts["interactions"]["reasons"]) >= {
        "wrong_language", "duplicate_user_item", "too_few_user_positives", "too_few_tokens"}


def test_a_malformed_line_in_the_middle_of_a_large_file_is_found_by_both_engines(tmp_path, monkeypatch):
    lines, middle = 40_000, 20_001
    ratings = [json.dumps({"user": f"u{n % 997}", "item": f"i{n % 50}", "stars": 5.0}) for n in range(1, lines + 1)]
    ratings[middle - 1] = '{"user": "u1", "item": "i1", "stars": 5.0'  # cut short
    (tmp_path / "ratings.jsonl").write_text("\n".join(ratings) + "\n")
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"id": f"i{n}", "name": f"Item {n}"}) + "\n"
                                                  for n in range(50)))
    params = ingest_params("shop", {"plugin": "generic", "interactions": {"path": "ratings.jsonl", "columns": {
        "user_id": "user", "item_id": "item", "rating": "stars"}}, "items": {"path": "items.jsonl", "columns": {
            "item_id": "id", "title": "name"}}}) | {"workers": 2}
    monkeypatch.setattr(stage, "SPLIT_BYTES", 64 << 10)  # ~30 splits, the bad line inside one of them
    results = [ingest("shop", tmp_path, params, "polars"), ingest("shop", tmp_path, params, "beam", TWO_WORKERS)]
    for result in results:
        bad = [r for r in result.quarantine.to_pylist() if r["source"] == "interactions/read"]
        assert [(r["row_ref"], r["reason"].split(":")[0]) for r in bad] == [(f"ratings.jsonl:{middle}", "not_json")]
        assert result.counts["interactions"]["raw"] == lines
        assert result.interactions.num_rows == lines - 1
    assert_same(*results)
