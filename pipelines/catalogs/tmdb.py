"""TMDB 5000 movies and credits, with MovieLens `links.csv` and `ratings.csv`.

Items are the TMDB movies (item_id = TMDB id); genres, keywords, cast and crew arrive as JSON lists
inside CSV cells. A movie whose genres or keywords are not such a list is quarantined; credits and
links are lookup tables and must read whole. Ratings point at MovieLens ids: links.csv maps them to
TMDB ids, and a rating whose movie has no TMDB id is quarantined ("unlinked_item").
"""

from __future__ import annotations

import json
from functools import cache, partial
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.catalogs.readers import Field, RowError, read
from pipelines.catalogs.source import (
    Items,
    Plan,
    Stream,
    attributes,
    film_document,
    quarantine_table,
    rejection,
    settings,
)

DEFAULTS = {
    "movies": "tmdb_5000_movies.csv",
    "credits": "tmdb_5000_credits.csv",
    "links": "links.csv",
    "ratings": "ratings.csv",
    "document_max_chars": 1200,
    "cast_names": 10,  # top-billed names kept in attributes and the document
}
MOVIE_FIELDS = [Field("id", "int", required=True), Field("title"), Field("overview"), Field("tagline"),
                Field("genres"), Field("keywords"), Field("release_date"), Field("vote_average", "float"),
                Field("vote_count", "int")]
CREDIT_FIELDS = [Field("movie_id", "int", required=True), Field("cast"), Field("crew")]
LINK_FIELDS = [Field("movieId", "int", required=True), Field("imdbId"), Field("tmdbId", "int")]
RATING_FIELDS = (Field("userId", "int", required=True), Field("movieId", "int", required=True),
                 Field("rating", "float", required=True), Field("timestamp", "int"))


def json_list(text: str | None, column: str) -> list[dict[str, Any]]:
    """A TMDB JSON cell: a list of objects each with a "name"; RowError naming `column` otherwise."""
    try:
        value = json.loads(text) if text else []
    except json.JSONDecodeError as err:
        raise RowError(f"wrong_type: not JSON ({err.msg}, column {err.colno})", column) from None
    if not isinstance(value, list) or not all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in value):
        raise RowError("wrong_type: not a JSON list of objects with a name", column)
    return value


def read_credits(path: Path, name: str, cast_names: int) -> pl.DataFrame:
    """Director and top-billed cast per TMDB id."""
    rows = []
    for credit in read(path, name, CREDIT_FIELDS, "items").whole().iter_rows(named=True):
        try:
            cast, crew = json_list(credit["cast"], "cast"), json_list(credit["crew"], "crew")
        except RowError as err:
            raise ValueError(f"{credit['row_ref']}: {err.field}: {err.reason}") from None
        billed = sorted(cast, key=lambda c: c.get("order", len(cast)))[:cast_names]
        rows.append({"id": credit["movie_id"], "cast": ", ".join(c["name"] for c in billed),
                     "director": next((c["name"] for c in crew if c.get("job") == "Director"), None)})
    return pl.DataFrame(rows, schema={"id": pl.Int64, "cast": pl.String, "director": pl.String})


def movie_items(movies: pl.DataFrame) -> tuple[pl.DataFrame, pa.Table]:
    """Movies with genre and keyword names; a movie whose JSON cells do not parse goes to quarantine."""
    rows, rejected = [], []
    for movie in movies.iter_rows(named=True):
        try:
            names = {c: [v["name"] for v in json_list(movie[c], c)] for c in ("genres", "keywords")}
        except RowError as err:
            rejected.append(rejection("items", "read", movie["row_ref"], err.reason, err.field,
                                      json.dumps(movie, ensure_ascii=False)))
            continue
        rows.append({**movie, "categories": names["genres"], "keywords": names["keywords"]})
    schema = {**movies.schema, "categories": pl.List(pl.String), "keywords": pl.List(pl.String)}
    return pl.DataFrame(rows, schema=schema), quarantine_table(rejected)


def tmdb_items(raw: Path, opts: dict[str, Any]) -> Items:
    movies = read(raw / opts["movies"], opts["movies"], MOVIE_FIELDS, "items")
    parsed, unparsed = movie_items(movies.frame)
    credits = read_credits(raw / opts["credits"], opts["credits"], opts["cast_names"])
    items = parsed.join(credits, on="id", how="left").with_columns(
        item_id=pl.col("id").cast(pl.String),
        creator="director",
        description="overview",
        year=pl.col("release_date").str.slice(0, 4).cast(pl.Int32, strict=False),
        url=pl.format("https://www.themoviedb.org/movie/{}", "id"),
    )
    items = items.with_columns(
        document=film_document(opts["document_max_chars"]),
        attributes=pl.Series([attributes({k: m[k] for k in ("tagline", "keywords", "cast", "vote_average",
                                                             "vote_count")}) for m in items.iter_rows(named=True)],
                             dtype=pl.String),
    )
    return Items(items, pa.concat_tables([movies.rejected, unparsed]), movies.count)


@cache
def read_links(path: Path, name: str) -> pl.DataFrame:
    """MovieLens id -> TMDB id, read once per process (a lookup table: it must read whole)."""
    return read(path, name, LINK_FIELDS, "interactions").whole().select("movieId", "tmdbId")


def linked_ratings(ratings: pl.DataFrame, links: Path, links_name: str) -> pl.DataFrame:
    """Ratings with TMDB ids; a rating whose movie has no TMDB id is refused ("unlinked_item")."""
    linked = ratings.join(read_links(links, links_name), on="movieId", how="left", maintain_order="left")
    return linked.select(
        "rating", "timestamp", user_id=pl.col("userId").cast(pl.String), item_id=pl.col("tmdbId").cast(pl.String),
        _reason=pl.when(pl.col("tmdbId").is_null()).then(
            pl.format("unlinked_item: movieId {} has no tmdbId in {}", "movieId", pl.lit(links_name))),
        _field=pl.when(pl.col("tmdbId").is_null()).then(pl.lit("movieId")))


def plan(raw: str, catalog: str, options: dict[str, Any]) -> Plan:
    opts = settings(options, catalog, DEFAULTS)
    ratings = partial(linked_ratings, links=Path(raw) / opts["links"], links_name=opts["links"])
    return Plan(interactions=Stream(opts["ratings"], RATING_FIELDS, ratings), items=partial(tmdb_items, Path(raw), opts))
