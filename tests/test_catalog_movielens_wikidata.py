"""movielens_wikidata (bundled `movies`): MovieLens joined to OMDb and Wikipedia on title + year."""

from __future__ import annotations

import json

import polars as pl
import pytest
from ingest_slices import RAW, ROOT

from pipelines import catalogs
from pipelines.catalogs.movielens_wikidata import read_summaries, title_key
from pipelines.common.params import catalog_block

OPTIONS = catalog_block("movies", ROOT / "params.yaml")["ingest"]


def test_title_key_matches_movielens_and_omdb_spellings():
    pairs = [("Matrix, The", "The Matrix"), ("Vie en Rose, La (Môme, La)", "La Vie en Rose"),
             ("Amélie (Fabuleux destin d'Amélie Poulain, Le)", "Amelie"), ("Fast & Furious", "Fast and Furious"),
             ("Léon: The Professional", "Leon: The Professional")]
    keys = pl.DataFrame(pairs, schema=["movielens", "omdb"], orient="row").select(
        title_key(pl.col("movielens")), title_key(pl.col("omdb")).alias("omdb"))
    assert keys["movielens"].to_list() == keys["omdb"].to_list()
    assert keys["movielens"][0] == "matrix"


def test_summary_year_comes_from_the_key_or_the_first_sentence(tmp_path):
    path = tmp_path / "summaries.json"
    path.write_text(json.dumps({
        "Breathless (1960 film)": "Breathless is a French crime drama.",
        "Vertigo (film)": "Vertigo is a 1958 American film noir directed by Alfred Hitchcock.",
        "2001: A Space Odyssey": "2001: A Space Odyssey is a 1968 epic science fiction film.",
        "Stalker": "Stalking is unwanted and repeated surveillance.",  # not a film: no year, no join
    }))
    summaries = read_summaries(path)
    assert summaries.select("wiki_title", "_year").rows() == [
        ("Breathless", 1960), ("Vertigo", 1958), ("2001: A Space Odyssey", 1968)]


@pytest.fixture(scope="module")
def movies():
    return catalogs.load("movies", RAW, OPTIONS)


def test_every_movie_is_an_item_or_quarantined_for_missing_metadata(movies):
    distinct = pl.read_parquet(RAW / "movielens_latest_small.parquet", columns=["movieId"])["movieId"].n_unique()
    assert movies.raw["items"] == distinct == movies.items.num_rows + movies.quarantine.num_rows
    assert set(movies.quarantine["source"].to_pylist()) == {"items/metadata"}
    assert movies.stats["movies_with_summary"] > 300


def test_vertigo_carries_omdb_and_wikipedia_fields(movies):
    vertigo = next(i for i in movies.items.to_pylist() if i["item_id"] == "903")
    assert (vertigo["title"], vertigo["creator"], vertigo["year"]) == ("Vertigo", "Alfred Hitchcock", 1958)
    assert vertigo["description"].startswith("Vertigo is a 1958 American film noir")
    assert vertigo["document"].startswith("Vertigo (1958) [SEP] Genres: Drama, Mystery, Romance, Thriller "
                                          "[SEP] Directed by Alfred Hitchcock [SEP] Vertigo is a 1958")
    assert len(vertigo["document"]) == OPTIONS["document_max_chars"]
    attributes = json.loads(vertigo["attributes"])
    assert attributes["imdb_id"] == "tt0052357" and "James Stewart" in attributes["cast"]
