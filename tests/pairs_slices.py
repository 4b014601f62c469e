"""Small real slices of the raw data mapped onto ITEMS / INTERACTIONS (test helpers for pairs and train).

The mapping is deliberately minimal (the ingest stage does the real one): what the pairs and train
tests need is real review texts and real co-rating patterns in the canonical schemas.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.schemas import INTERACTIONS, ITEMS, conform

RAW = Path(__file__).resolve().parents[1] / "data" / "fetched"


def item(item_id: str, catalog: str, title: str, categories: list[str], document: str) -> dict:
    return {"item_id": item_id, "catalog": catalog, "title": title, "creator": None, "description": None,
            "categories": categories, "year": None, "price": None, "url": None, "attributes": "{}",
            "document": document}


def fashion_slice(rows: int = 800) -> tuple[pa.Table, pa.Table]:
    """(items, interactions) from the first `rows` real clothing reviews."""
    raw = pq.read_table(RAW / "womens_clothing_reviews.parquet").slice(0, rows).to_pylist()
    items, interactions = {}, []
    for line, row in enumerate(raw):
        item_id = str(row["Clothing ID"])
        categories = [c for c in (row["Division Name"], row["Department Name"], row["Class Name"]) if c]
        items.setdefault(item_id, item(item_id, "fashion", row["Class Name"] or "clothing", categories,
                                       " / ".join(categories) or "clothing"))
        interactions.append({"row_ref": f"womens_clothing_reviews.parquet:{line}", "user_id": None,
                             "item_id": item_id, "rating": float(row["Rating"]), "timestamp": None,
                             "summary": row["Title"], "text": row["Review Text"]})
    return (conform(pa.Table.from_pylist(list(items.values())), ITEMS, "fashion items"),
            conform(pa.Table.from_pylist(interactions), INTERACTIONS, "fashion interactions"))


def movies_slice(users: int = 40) -> tuple[pa.Table, pa.Table]:
    """(items, interactions) for the real ratings of the first `users` MovieLens users."""
    raw = pq.read_table(RAW / "movielens_latest_small.parquet").to_pylist()
    raw = [row for row in raw if row["userId"] <= users]
    items, interactions = {}, []
    for row in raw:
        item_id = str(row["movieId"])
        genres = [g for g in (row["genres"] or "").split("|") if g]
        items.setdefault(item_id, item(item_id, "movies", row["title"], genres,
                                       f"{row['title']} ({int(row['year'] or 0)}). Genres: {', '.join(genres)}"))
        interactions.append({"row_ref": f"movielens_latest_small.parquet:{row['rownames']}",
                             "user_id": str(row["userId"]), "item_id": item_id, "rating": float(row["rating"]),
                             "timestamp": row["timestamp"], "summary": None, "text": None})
    return (conform(pa.Table.from_pylist(list(items.values())), ITEMS, "movie items"),
            conform(pa.Table.from_pylist(interactions), INTERACTIONS, "movie interactions"))


def write_fashion_pairs(folder: Path, rows: int = 800) -> Path:
    """Run the pairs logic on a real fashion slice and write its tables into `folder`."""
    from pipelines.common.atomic import write_parquet
    from pipelines.pairs import PairsParams, build

    params = PairsParams(seed=42, test_fraction=0.1, validation_fraction=0.05, min_rating=4.0, queries="reviews",
                         review_min_words=20, hard_query_tokens=20, co_liked_per_user=0, co_liked_max_pairs=0,
                         document_review_chars=600, train_hard_queries=False, min_test_queries=0,
                         min_validation_queries=0)  # the split at its fractions, as before the minimums
    items, interactions = fashion_slice(rows)
    tables, _ = build(items.to_pylist(), interactions.to_pylist(), params)
    for name, table in tables.items():
        write_parquet(table, folder / f"{name}.parquet")
    return folder
