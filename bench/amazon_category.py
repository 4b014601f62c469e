"""Write a synthetic Amazon Reviews 2023 category: `reviews/<Category>.jsonl` + `meta/meta_<Category>.jsonl`.

Also `ratings.parquet` (user_id, parent_asin, rating, timestamp of the same reviews) and
`products.parquet` (parent_asin, title): the text-free input of bench/ingest.py.

The exact published schema (what the `amazon2023` plug-in reads), at any size: review bodies are
1-4 sentences drawn from the bundled real fashion reviews, titles real review titles, ~2% of reviews
French/German/Spanish; users and items are skewed (popular items, light users) so duplicates, users
with too few positives and unknown items all occur; `bad_lines` malformed lines (cut JSON, a wrong
type, a missing user, bytes that are not UTF-8) are spread through each file. Item documents
("title [SEP] store [SEP] features") are ~150-220 characters: a realistic but modest product
listing, since embedding time grows with length (bench/scale.py measures docs/s by length).

    python bench/amazon_category.py --reviews 2500000 --items 826000 --out /tmp/raw
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

REAL_REVIEWS = Path(__file__).resolve().parents[1] / "data/fetched/womens_clothing_reviews.parquet"
CATEGORY = "Synthetic_Fashion"
FOREIGN = [
    "Cette robe est magnifique et la taille est parfaite pour moi.",
    "Der Stoff ist sehr weich und die Farbe sieht genau aus wie auf dem Foto.",
    "La camisa es muy bonita pero las mangas son un poco largas.",
    "Je la porte tous les jours, elle est confortable et élégante.",
]
BRANDS = ["Amelia & Co", "Northwind", "Lark Studio", "Blue Harbor", "Meadowlane", "Urban Thread", "Solstice",
          "Kinfolk Apparel", "Driftwood", "Maple & Moss", "Fern Row", "Cobalt Lane"]
COLOURS = ["Black", "Navy", "Ivory", "Sage", "Rust", "Blush", "Charcoal", "Olive", "Denim Blue", "Burgundy"]
STYLES = ["Casual", "Classic", "Relaxed Fit", "Slim Fit", "Vintage", "Bohemian", "Everyday", "Lightweight"]
FEATURES = ["Machine washable", "Soft stretch fabric", "Side pockets", "Adjustable straps", "Fully lined",
            "Breathable cotton blend", "Hidden back zipper", "Elastic waistband", "Imported", "Wrinkle resistant"]
SECOND = 1000  # timestamps are milliseconds in the published files


def sentences_and_titles() -> tuple[list[str], list[str], list[str]]:
    real = pl.read_parquet(REAL_REVIEWS, columns=["Title", "Review Text", "Class Name"])
    sentences = [s for text in real["Review Text"].drop_nulls().to_list()
                 for s in re.split(r"(?<=[.!?])\s+", text) if s]
    classes = sorted(set(real["Class Name"].drop_nulls().to_list()))
    return sentences, real["Title"].drop_nulls().to_list(), classes


def bad_line(kind: int, good: bytes) -> bytes:
    return [good[: len(good) // 2],  # cut short: not JSON
            good.replace(b'":', b'":{"not":"this"},"was":', 1),  # the first field of the wrong type
            good.replace(b'"user_id"', b'"user"', 1).replace(b'"parent_asin"', b'"asin_parent"', 1),  # missing
            good[:20] + b"\xff\xfe" + good[20:]][kind % 4]  # not UTF-8


def write_lines(path: Path, lines: list[bytes], bad_every: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for number, line in enumerate(lines, start=1):
            f.write((bad_line(number // bad_every, line) if bad_every and number % bad_every == 0 else line) + b"\n")


def generate(reviews: int, items: int, out: Path, bad_lines: int = 40, seed: int = 0) -> dict[str, int]:
    """Write the category under `out`; returns the line counts."""
    rng = np.random.default_rng(seed)
    sentences, titles, classes = sentences_and_titles()
    encode = msgspec.json.Encoder().encode
    asins = [f"B0{i:08d}" for i in range(items)]
    meta = []
    for i in range(items):
        brand, colour, style, kind = (BRANDS[i % len(BRANDS)], COLOURS[(i // 7) % len(COLOURS)],
                                      STYLES[(i // 3) % len(STYLES)], classes[(i // 11) % len(classes)])
        features = [FEATURES[(i + k * 3) % len(FEATURES)] for k in range(2 + i % 2)]
        meta.append(encode({
            "main_category": "AMAZON FASHION", "title": f"{brand} Women's {style} {kind} - {colour}",
            "average_rating": round(3 + (i % 20) / 10, 1), "rating_number": int(i % 500), "features": features,
            "description": [f"A {style.lower()} {kind.lower()} in {colour.lower()}."], "price": None if i % 9 else
            round(15 + i % 60 + 0.99, 2), "images": [], "videos": [], "store": brand, "categories": [],
            "details": {"Department": "Womens", "Color": colour}, "parent_asin": asins[i], "bought_together": None,
        }))
    write_lines(out / "meta" / f"meta_{CATEGORY}.jsonl", meta, items // max(bad_lines // 4, 1) if bad_lines else 0)
    del meta

    count = rng.integers(1, 5, size=reviews)
    picks = rng.integers(len(sentences), size=int(count.sum()))
    starts = np.concatenate(([0], np.cumsum(count)[:-1]))
    foreign = rng.random(reviews) < 0.02
    item = np.floor(items * rng.random(reviews) ** 2).astype(np.int64)  # popular items have low ids
    unknown = rng.random(reviews) < 0.01  # an item the catalog does not have
    users = rng.integers(max(reviews // 6, 1), size=reviews)  # ~6 reviews a user: some with fewer than 3 positives
    times = rng.integers(1_400_000_000, 1_700_000_000, size=reviews) * SECOND
    again = np.flatnonzero(rng.random(reviews) < 0.01)[1:]  # the previous review's user and item again, later
    users[again], item[again], times[again] = users[again - 1], item[again - 1], times[again - 1] + 86_400 * SECOND
    ratings = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], p=[0.05, 0.07, 0.13, 0.25, 0.5], size=reviews)
    title_pick = rng.integers(len(titles), size=reviews)
    lines = []
    for r in range(reviews):
        body = FOREIGN[r % 4] if foreign[r] else " ".join(sentences[p] for p in picks[starts[r]:starts[r] + count[r]])
        asin = f"B9{r:08d}" if unknown[r] else asins[item[r]]
        lines.append(encode({
            "rating": float(ratings[r]), "title": titles[title_pick[r]], "text": body, "images": [],
            "asin": asin, "parent_asin": asin, "user_id": f"AG{users[r]:026d}", "timestamp": int(times[r]),
            "helpful_vote": 0, "verified_purchase": True}))
    write_lines(out / "reviews" / f"{CATEGORY}.jsonl", lines, reviews // max(bad_lines - bad_lines // 4, 1)
                if bad_lines else 0)
    # The same ratings without text, as Parquet (bench/ingest.py's "ratings only" input).
    pl.DataFrame({"user_id": [f"AG{u:026d}" for u in users.tolist()],
                  "parent_asin": [f"B9{r:08d}" if unknown[r] else asins[item[r]] for r in range(reviews)],
                  "rating": ratings, "timestamp": times}).write_parquet(out / "ratings.parquet")
    pl.DataFrame({"parent_asin": asins, "title": [f"Item {i}" for i in range(items)]}).write_parquet(
        out / "products.parquet")
    return {"reviews": reviews, "items": items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=2_500_000)
    parser.add_argument("--items", type=int, default=826_000)
    parser.add_argument("--bad-lines", type=int, default=40, help="malformed lines in all (1/4 in meta)")
    parser.add_argument("--out", type=Path, required=True, help="raw folder to write reviews/ and meta/ under")
    args = parser.parse_args()
    print(generate(args.reviews, args.items, args.out, args.bad_lines))


if __name__ == "__main__":
    main()
