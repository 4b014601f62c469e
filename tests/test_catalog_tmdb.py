"""tmdb: TMDB 5000 movies/credits CSVs (JSON cells) and MovieLens links/ratings (fixture)."""

from __future__ import annotations

import shutil

import pytest
from ingest_slices import FIXTURES, ingest, ingest_params

from pipelines import catalogs

RAW = FIXTURES / "tmdb"


def test_movies_credits_and_links_map_onto_the_canonical_tables():
    source = catalogs.load("films", RAW, {"plugin": "tmdb"})
    items = {i["item_id"]: i for i in source.items.to_pylist()}
    assert list(items) == ["19995", "285", "206647"]
    avatar = items["19995"]
    assert (avatar["title"], avatar["creator"], avatar["year"], avatar["categories"]) == (
        "Avatar", "James Cameron", 2009, ["Action", "Adventure", "Fantasy", "Science Fiction"])
    assert avatar["document"].startswith(
        "Avatar (2009) [SEP] Genres: Action, Adventure, Fantasy, Science Fiction [SEP] Directed by James Cameron "
        "[SEP] In the 22nd century")
    assert avatar["document"].endswith("[SEP] Cast: Sam Worthington, Zoe Saldana, Sigourney Weaver")
    assert avatar["url"] == "https://www.themoviedb.org/movie/19995"
    assert "\n" in items["206647"]["description"]  # a quoted multi-line CSV cell survives
    # ratings.csv points at MovieLens ids; links.csv turns them into TMDB ids
    assert source.interactions.slice(0, 2).to_pylist()[1] == {
        "row_ref": "ratings.csv:2", "user_id": "1", "item_id": "285", "rating": 4.0, "timestamp": 1260759179,
        "summary": None, "text": None}


def test_bad_rows_are_quarantined_and_counts_add_up():
    result = ingest("films", RAW, ingest_params("films", {"plugin": "tmdb"}))
    rows = {ref: (source, field, reason.split(":")[0]) for source, ref, field, reason in zip(
        *(result.quarantine[c].to_pylist() for c in ("source", "row_ref", "field", "reason")))}
    assert rows["tmdb_5000_movies.csv:4"] == ("items/read", "genres", "wrong_type")
    assert rows["tmdb_5000_movies.csv:5"] == ("items/title", "title", "missing_title")
    assert rows["tmdb_5000_movies.csv:6"] == ("items/unique", "item_id", "duplicate_item_id")
    assert rows["tmdb_5000_movies.csv:7"] == ("items/read", "id", "wrong_type")
    assert rows["ratings.csv:7"] == ("interactions/read", "movieId", "unlinked_item")
    assert rows["ratings.csv:13"] == ("interactions/read", "rating", "wrong_type")
    assert rows["ratings.csv:14"] == ("interactions/read", "userId", "missing_field")
    for table, raw in (("items", 7), ("interactions", 14)):
        counts = result.counts[table]
        assert counts["raw"] == raw == counts["kept"] + counts["quarantined"]


def test_a_malformed_credits_cell_is_an_error_naming_file_row_and_field(tmp_path):
    raw = shutil.copytree(RAW, tmp_path / "tmdb")
    credits = (raw / "tmdb_5000_credits.csv").read_text().replace('"[{""cast_id"": 0', '"[{""cast_id"": 0,,', 1)
    (raw / "tmdb_5000_credits.csv").write_text(credits)
    with pytest.raises(ValueError, match=r"tmdb_5000_credits.csv:1: cast: wrong_type: not JSON"):
        catalogs.load("films", raw, {"plugin": "tmdb"})
