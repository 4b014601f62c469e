"""The Polars and Beam engines give identical output on real data (and on the Amazon fixture, which
exercises every rule: language, duplicates, users with too few positives)."""

from __future__ import annotations

import pytest
from ingest_slices import FIXTURES, ROOT, ingest, ingest_params, real_raw_slice

from pipelines.common.params import load_section

BUNDLED = load_section("ingest", ROOT / "params.yaml")["catalogs"]


@pytest.fixture(scope="module")
def real_raw(tmp_path_factory):
    return real_raw_slice(tmp_path_factory.mktemp("raw"))


@pytest.mark.parametrize("catalog", ["movies", "fashion"])
def test_engines_agree_on_real_slices(real_raw, catalog):
    params = ingest_params(catalog, BUNDLED[catalog])
    polars, beam = (ingest(catalog, real_raw, params, engine) for engine in ("polars", "beam"))
    assert polars.counts == beam.counts
    assert polars.interactions.equals(beam.interactions)
    assert polars.quarantine.equals(beam.quarantine)
    assert polars.items.equals(beam.items)
    # The slice reaches the rules it is meant to test.
    expected = {"movies": {"rating_below_min", "unknown_item", "duplicate_user_item", "too_few_user_positives"},
                "fashion": {"rating_below_min", "too_few_tokens"}}[catalog]
    assert set(polars.counts["interactions"]["reasons"]) >= expected


def test_engines_agree_on_the_amazon_fixture():
    params = ingest_params("beauty", {"plugin": "amazon2023", "category": "All_Beauty"})
    polars, beam = (ingest("beauty", FIXTURES / "amazon2023", params, engine) for engine in ("polars", "beam"))
    assert polars.counts == beam.counts
    assert polars.interactions.equals(beam.interactions)
    assert polars.quarantine.equals(beam.quarantine)
    assert set(polars.counts["interactions"]["reasons"]) >= {
        "wrong_language", "duplicate_user_item", "too_few_user_positives", "too_few_tokens"}
