"""Test helpers for ingest: filter params and small real slices of the bundled raw data."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.ingest import stage

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "fetched"
FIXTURES = ROOT / "tests" / "fixtures"
FILTERS = {"min_rating": 4, "min_tokens": 5, "language": "en", "min_user_positives": 3}


def ingest_params(catalog: str, options: dict[str, Any], engine: str = "polars") -> dict[str, Any]:
    """An `ingest:` params section with one catalog."""
    return {"engine": engine, "filters": dict(FILTERS), "catalogs": {catalog: options}}


def real_raw_slice(folder: Path, ratings: int = 2500, reviews: int = 2000, rerated: int = 300) -> Path:
    """A raw folder of real data cut short: the first `ratings` MovieLens ratings plus `rerated` of
    them rated again (earlier, or at the same second: the duplicate rule's hard cases), the first
    `reviews` clothing reviews, and the full OMDb and Wikipedia files (linked, read-only)."""
    folder.mkdir(parents=True, exist_ok=True)
    movielens = pl.read_parquet(RAW / "movielens_latest_small.parquet").head(ratings)
    again = movielens.gather_every(ratings // rerated).with_columns(
        timestamp=pl.col("timestamp") - pl.int_range(pl.len()) % 2 * 1000)
    pl.concat([movielens, again]).write_parquet(folder / "movielens_latest_small.parquet")
    pl.read_parquet(RAW / "womens_clothing_reviews.parquet").head(reviews).write_parquet(
        folder / "womens_clothing_reviews.parquet")
    for name in ("omdb_movies.db", "wikipedia_movie_summaries.json"):
        (folder / name).symlink_to(RAW / name)
    return folder


@dataclass(frozen=True)
class Ingested:
    items: pa.Table
    interactions: pa.Table
    quarantine: pa.Table
    counts: dict[str, Any]


def ingest(catalog: str, raw: Path, params: dict[str, Any], engine: str | None = None,
           beam_args: list[str] | None = None) -> Ingested:
    """`semrec ingest` into a temporary folder, its three tables read back."""
    with tempfile.TemporaryDirectory(prefix="ingest-test-") as out:
        counts = stage.ingest(catalog, str(raw), params["catalogs"][catalog], params, Path(out), engine,  # type: ignore[arg-type]
                              beam_args)
        return Ingested(*(pq.read_table(Path(out) / f"{name}.parquet")
                          for name in ("items", "interactions", "quarantine")), counts)
