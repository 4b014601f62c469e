"""A catalog in a foreign format, made from real reviews: what README "Adding a catalog" walks through.

    python tests/onboarding_fixture.py data/sources/boutique.zip [--reviews 2000]

`boutique_reviews.tsv` inside a zip: tab-separated, quoted, ratings as words (positive / neutral /
negative), dates as text ("March 3, 2015"), apostrophes and ampersands as HTML entities, no user
ids and no item table. The rows are the first real reviews of the bundled Women's Clothing
E-Commerce file (data/fetched, `dvc repro fetch_data`): nothing third-party is committed.
"""

from __future__ import annotations

import argparse
import datetime
import io
import zipfile
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
REVIEWS = ROOT / "data" / "fetched" / "womens_clothing_reviews.parquet"
MEMBER = "boutique_reviews.tsv"
WORDS = {5: "positive", 4: "positive", 3: "neutral", 2: "negative", 1: "negative"}


def escaped(column: str) -> pl.Expr:
    return pl.col(column).str.replace_all("&", "&amp;", literal=True).str.replace_all("'", "&#039;", literal=True)


def boutique_table(reviews: int) -> pl.DataFrame:
    real = pl.read_parquet(REVIEWS).head(reviews)
    start = datetime.date(2015, 1, 1)
    dates = [(start + datetime.timedelta(days=3 * i)).strftime("%B %-d, %Y") for i in range(real.height)]
    return real.select(
        product=pl.format("{} {}", "Class Name", "Clothing ID"),
        department=pl.col("Department Name"),
        verdict=pl.col("Rating").replace_strict(WORDS, return_dtype=pl.String),
        posted=pl.Series(dates),
        headline=escaped("Title"),
        review=escaped("Review Text"),
    )


def write_boutique_zip(path: Path, reviews: int = 2000) -> Path:
    buffer = io.BytesIO()
    boutique_table(reviews).write_csv(buffer, separator="\t", quote_style="always")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MEMBER, buffer.getvalue())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the zip to write")
    parser.add_argument("--reviews", type=int, default=2000)
    args = parser.parse_args()
    print(write_boutique_zip(args.out, args.reviews))


if __name__ == "__main__":
    main()
