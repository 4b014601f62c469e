"""MovieLens latest-small ratings joined to Wikidata/OMDb films and Wikipedia summaries (the bundled `movies`).

Movies join OMDb on normalised title + year (see `title_key`); a movie OMDb does not know has no
director, cast or proper title, so it is quarantined ("no_metadata") and its ratings later fail the
item rule. Where OMDb lists two films under one key, the most-voted wins. Wikipedia summaries join
the same way, their year taken from the key ("Breathless (1960 film)") or the first sentence ("...
is a 1958 American film"), and become the description. Interactions are the ratings (no text).
"""

from __future__ import annotations

import json
import re
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.catalogs.readers import Field, read
from pipelines.catalogs.source import Items, Plan, Stream, film_document, quarantine_frame, settings

DEFAULTS = {
    "ratings": "movielens_latest_small.parquet",
    "films": "omdb_movies.db",
    "summaries": "wikipedia_movie_summaries.json",
    "document_max_chars": 1200,
}
FIELDS = (
    Field("movieId", "int", required=True),
    Field("userId", "int", required=True),
    Field("rating", "float", required=True),
    Field("timestamp", "int"),
    Field("title"),
    Field("year", "int"),
    Field("genres", "str_list"),
)
OMDB_COLUMNS = ["imdbID", "Title", "Year", "Rating", "Runtime", "Director", "Writer", "Cast", "imdbRating",
                "imdbVotes", "Language", "Country", "Awards"]
ARTICLES = r"(?:the|a|an|la|le|les|l|il|el|los|las|das|der|die|den|det|lo|gli|un|une)"
WIKI_KEY = re.compile(r"^(?P<title>.*?)\s*\((?:(?P<year>\d{4}) )?film\)$")
WIKI_YEAR = re.compile(r"\b(?:is|was)\b[^.]*?\b(1[89]\d\d|20\d\d)\b")


def title_key(title: pl.Expr) -> pl.Expr:
    """Title normalised for joining: no "(alternative title)", trailing or leading article, accent,
    punctuation or case. "Matrix, The" and "The Matrix" both become "matrix"."""
    t = title.str.to_lowercase().str.replace_all(r"\s*\([^)]*\)", "")
    t = t.str.replace(rf"^(.*), ({ARTICLES})'?$", "${2} ${1}")
    t = t.str.normalize("NFKD").str.replace_all(r"\p{Mn}", "").str.replace_all("&", " and ")
    t = t.str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars()
    return t.str.replace(rf"^{ARTICLES} ", "")


def read_films(path: Path) -> pl.DataFrame:
    """OMDb films, one per (title key, year): the most-voted where several share one."""
    if not path.is_file():
        raise FileNotFoundError(f"{path.name}: no such file {path}")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        films = pl.read_database("SELECT " + ", ".join(f'"{c}"' for c in OMDB_COLUMNS) + " FROM omdb", db)
    return (films.with_columns(_key=title_key(pl.col("Title")), _year=pl.col("Year").cast(pl.Int64))
            .sort("imdbVotes", "imdbID", descending=[True, False], nulls_last=True)
            .unique(["_key", "_year"], keep="first", maintain_order=True))


def read_summaries(path: Path) -> pl.DataFrame:
    """Wikipedia lead summaries with the title and year each one is about."""
    if not path.is_file():
        raise FileNotFoundError(f"{path.name}: no such file {path}")
    summaries: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for key, text in summaries.items():
        match = WIKI_KEY.match(key)
        year = (match and match["year"]) or (found[1] if (found := WIKI_YEAR.search(text)) else None)
        rows.append({"wiki_title": match["title"] if match else key, "_year": int(year) if year else None,
                     "summary": text})
    frame = pl.DataFrame(rows, schema={"wiki_title": pl.String, "_year": pl.Int64, "summary": pl.String})
    # A (title, year) claimed by two summaries is ambiguous: use neither.
    return frame.with_columns(_key=title_key(pl.col("wiki_title"))).filter(
        pl.len().over("_key", "_year") == 1, pl.col("_year").is_not_null())


def rating_rows(ratings: pl.DataFrame) -> pl.DataFrame:
    return ratings.select(item_id=pl.col("movieId").cast(pl.String), user_id=pl.col("userId").cast(pl.String),
                          rating="rating", timestamp="timestamp")


def movie_items(raw: Path, opts: dict[str, Any]) -> Items:
    """The rated movies joined to OMDb films and Wikipedia summaries; a movie without a film is quarantined."""
    ratings = read(raw / opts["ratings"], opts["ratings"], FIELDS, "interactions")
    movies = (ratings.frame.with_columns(item_id=pl.col("movieId").cast(pl.String))
              .group_by("item_id", maintain_order=True)
              .agg(pl.col("row_ref", "title", "year", "genres").first())
              .with_columns(_key=title_key(pl.col("title")), _year="year",
                            categories=pl.col("genres").list.filter(pl.element() != "(no genres listed)")))
    films = read_films(raw / opts["films"])
    summaries = read_summaries(raw / opts["summaries"])
    joined = movies.join(films, on=["_key", "_year"], how="left").join(
        summaries, on=["_key", "_year"], how="left")
    matched = joined.filter(pl.col("imdbID").is_not_null())
    unmatched = quarantine_frame(
        joined.filter(pl.col("imdbID").is_null()).select("row_ref", "item_id", "title", "year", "genres"),
        "items", "metadata", "no_metadata: no OMDb film with this title and year", "title")
    items = matched.with_columns(
        title=pl.col("Title"),
        creator=pl.col("Director"),
        director=pl.col("Director"),
        cast=pl.col("Cast"),
        description=pl.col("summary"),
        url=pl.format("https://www.imdb.com/title/{}/", "imdbID"),
        attributes=pl.struct(
            writer="Writer", cast="Cast", language="Language", country="Country", awards="Awards",
            runtime="Runtime", rating="Rating", imdb_rating="imdbRating", imdb_id="imdbID",
        ).struct.json_encode(),
    ).with_columns(document=film_document(opts["document_max_chars"]))
    return Items(
        items.select("row_ref", "item_id", "title", "creator", "description", "categories", "year", "url",
                     "attributes", "document"),
        unmatched, movies.height,
        stats={"omdb_title_years": films.height, "wikipedia_title_years": summaries.height,
               "movies_with_metadata": matched.height,
               "movies_with_summary": matched.filter(pl.col("summary").is_not_null()).height},
    )


def plan(raw: str, catalog: str, options: dict[str, Any]) -> Plan:
    opts = settings(options, catalog, DEFAULTS)
    return Plan(interactions=Stream(opts["ratings"], FIELDS, rating_rows), items=partial(movie_items, Path(raw), opts))
