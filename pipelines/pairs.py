"""pairs stage: (query, positive item) pairs, a leakage-free train/validation/test split, the documents, and the
popularity prior's counts.

    semrec pairs --catalog fashion --ingest data/fashion/ingest --out data/fashion/pairs

Settings: params `pairs`, with the catalog's overrides (`catalogs.<catalog>.pairs`) laid over it. `build` runs
the steps in order; each leakage rule is explained on the function that enforces it: `split`, `with_extras`,
`item_documents`, `without_cloze_queries`, `without_quoted_reviews`, `without_held_out_queries`, `popularity`.
The query sources are described on `made_pairs`, the outputs on `output_tables`, the side sizes on
`sized_fractions`.
"""

from __future__ import annotations

import argparse
import bisect
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.atomic import write_json, write_parquet
from pipelines.common.params import ParamsError, catalog_block, load_section, with_overrides
from pipelines.common.schemas import DOCUMENTS, INTERACTIONS, ITEMS, PAIRS, POPULARITY, conform
from pipelines.common.split import CLOZE_KINDS, Side, check_fractions, normalise, side, unit_hash, unquoted

QuerySource = Literal["reviews", "co_liked", "none"]
EXTRA_PAIRS = "extra_pairs"  # under the ingest folder: <stage>/<side>_pairs.parquet that other stages made


@dataclass(frozen=True)
class PairsParams:
    seed: int
    test_fraction: float
    validation_fraction: float
    min_rating: float
    queries: QuerySource
    review_min_words: int
    hard_query_tokens: int
    co_liked_per_user: int
    co_liked_max_pairs: int
    document_review_chars: int
    train_hard_queries: bool
    min_test_queries: int
    min_validation_queries: int

    @classmethod
    def from_params(cls, section: dict[str, Any], block: dict[str, Any], catalog: str) -> PairsParams:
        """`params.yaml` `pairs` with `catalogs.<catalog>.pairs` laid over it, failing early on bad values."""
        merged = with_overrides(section, block, "pairs", catalog)
        if missing := sorted(set(cls.__dataclass_fields__) - set(merged)):
            raise ParamsError(f"pairs: missing key(s) {missing}")
        if merged["queries"] not in get_args(QuerySource):
            raise ParamsError(f"catalogs.{catalog}.pairs.queries must be one of {get_args(QuerySource)}, "
                              f"not {merged['queries']!r}")
        params = cls(seed=int(merged["seed"]), test_fraction=float(merged["test_fraction"]),
                     validation_fraction=float(merged["validation_fraction"]),
                     min_rating=float(merged["min_rating"]), queries=merged["queries"],
                     review_min_words=int(merged["review_min_words"]),
                     hard_query_tokens=int(merged["hard_query_tokens"]),
                     co_liked_per_user=int(merged["co_liked_per_user"]),
                     co_liked_max_pairs=int(merged["co_liked_max_pairs"]),
                     document_review_chars=int(merged["document_review_chars"]),
                     train_hard_queries=bool(merged["train_hard_queries"]),
                     min_test_queries=int(merged["min_test_queries"]),
                     min_validation_queries=int(merged["min_validation_queries"]))
        try:
            check_fractions("pairs", params.test_fraction, params.validation_fraction)
        except ValueError as err:
            raise ParamsError(str(err)) from None
        return params


class Rows(Protocol):
    """Rows that can be counted and read more than once: a list, or `ParquetRows`."""

    def __iter__(self) -> Iterator[dict[str, Any]]: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Pair:
    query_id: str
    query: str
    item_id: str
    kind: str
    group: str  # the leakage unit: pairs sharing a group are always split together
    hard_query: str  # the short form of the query, for test_hard


@dataclass(frozen=True)
class Splits:
    """The pairs on each side; test_hard needs no field: it is `test` asked by each pair's hard query."""

    train: tuple[Pair, ...]
    validation: tuple[Pair, ...]
    test: tuple[Pair, ...]

    @property
    def held_out(self) -> tuple[Pair, ...]:
        return self.validation + self.test

    @property
    def all(self) -> tuple[Pair, ...]:
        return self.train + self.validation + self.test


def review_query(summary: str, body: str) -> str:
    if not summary:
        return body
    return f"{summary} {body}" if summary[-1] in ".!?" else f"{summary}. {body}"


def review_pairs(interactions: Iterable[dict[str, Any]], params: PairsParams) -> list[Pair]:
    """Query = summary + body of a positive review (rating >= min_rating, body of at least `review_min_words`
    words), grouped by its body; its hard form is the summary alone, else the body's first `hard_query_tokens`
    words."""
    pairs = []
    for row in interactions:
        body = (row["text"] or "").strip()
        words = body.split()
        if row["rating"] < params.min_rating or len(words) < params.review_min_words:
            continue
        summary = (row["summary"] or "").strip()
        pairs.append(Pair(query_id=row["row_ref"], query=review_query(summary, body), item_id=row["item_id"],
                          kind="review", group=normalise(body),
                          hard_query=summary or " ".join(words[:params.hard_query_tokens])))
    return pairs


def co_liked_pairs(interactions: Iterable[dict[str, Any]], items: dict[str, dict[str, Any]],
                   params: PairsParams) -> list[Pair]:
    """Item-to-item pairs: each user's liked items in time order, consecutive ones paired (seeded sample), at
    most `co_liked_per_user` per user and `co_liked_max_pairs` in all.

    The query is the anchor item's document; its hard form is the anchor's bare title."""
    liked: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in interactions:
        if row["user_id"] is not None and row["rating"] >= params.min_rating:
            liked[row["user_id"]].append((row["timestamp"] or 0, row["item_id"]))
    chosen: dict[tuple[str, str], None] = {}  # an ordered set: a pair liked by several users counts once
    for user in sorted(liked):
        in_time_order = [item for _, item in sorted(liked[user])]
        steps = [(a, b) for a, b in zip(in_time_order, in_time_order[1:]) if a != b]
        rng = random.Random(f"{params.seed}:{user}")
        chosen.update(dict.fromkeys(rng.sample(steps, min(params.co_liked_per_user, len(steps)))))
    kept = list(chosen)
    if len(kept) > params.co_liked_max_pairs:
        kept = random.Random(params.seed).sample(kept, params.co_liked_max_pairs)
    return [Pair(query_id=f"{a}>{b}", query=items[a]["document"], item_id=b, kind="co_liked",
                 group=normalise(items[a]["document"]), hard_query=items[a]["title"]) for a, b in kept]


def made_pairs(items: list[dict[str, Any]], interactions: Rows, params: PairsParams) -> list[Pair]:
    """The catalog's own pairs, from its one query source (`queries`): `reviews` (`review_pairs`), `co_liked`
    for catalogs without review text (`co_liked_pairs`), or `none`, only the extra pairs other stages made
    (movies: co-liked pairs taught co-occurrence, not content, and lost on validation)."""
    if params.queries == "reviews":
        return review_pairs(interactions, params)
    if params.queries == "co_liked":
        return co_liked_pairs(interactions, {item["item_id"]: item for item in items}, params)
    return []


def extra_pairs(table: pa.Table) -> list[Pair]:
    """Pairs made and split elsewhere (synthetic conversational queries: already short, their own hard form)."""
    return [Pair(query_id=r["query_id"], query=r["query"], item_id=r["item_id"], kind=r["kind"],
                 group=normalise(r["query"]), hard_query=r["query"]) for r in table.to_pylist()]


def drop_duplicates(pairs: Iterable[Pair]) -> list[Pair]:
    """Keep the first of each (normalised query, item) pair."""
    unique: dict[tuple[str, str], Pair] = {}
    for pair in pairs:
        unique.setdefault((normalise(pair.query), pair.item_id), pair)
    return list(unique.values())


def sized_fractions(groups: Iterable[str], params: PairsParams) -> PairsParams:
    """`params` with the test and validation fractions raised, where a side would hold fewer groups than its
    minimum, just enough that it holds the minimum (the two together at most half the groups, test first).
    Raising a fraction moves groups from train only: `side` keeps every earlier assignment."""
    hashes = sorted(unit_hash(group, params.seed) for group in set(groups))
    if not hashes:
        return params

    def threshold(count: int) -> float:  # the smallest fraction below which `count` groups fall
        return 0.0 if count == 0 else 1.0 if count >= len(hashes) else (hashes[count - 1] + hashes[count]) / 2

    room = len(hashes) // 2
    test_count = bisect.bisect_left(hashes, params.test_fraction)
    test = params.test_fraction
    if test_count < params.min_test_queries and test_count < room:
        test_count = min(params.min_test_queries, room)
        test = threshold(test_count)
    validation_count = bisect.bisect_left(hashes, test + params.validation_fraction) - test_count
    validation = params.validation_fraction
    if validation_count < params.min_validation_queries and test_count + validation_count < room:
        validation = threshold(test_count + min(params.min_validation_queries, room - test_count)) - test
    return replace(params, test_fraction=test, validation_fraction=validation)


def split(pairs: Iterable[Pair], params: PairsParams) -> Splits:
    """The pairs on three sides by their group (the review body for reviews, the query text otherwise), a group
    wholly on one side: no review text is trained on and then tested, and no (query, item) pair is on two sides."""
    sides: dict[Side, list[Pair]] = {"train": [], "validation": [], "test": []}
    for pair in pairs:
        sides[side(pair.group, params.seed, params.test_fraction, params.validation_fraction)].append(pair)
    return Splits(train=tuple(sides["train"]), validation=tuple(sides["validation"]), test=tuple(sides["test"]))


def with_extras(splits: Splits, extras: Splits) -> Splits:
    """Each side with its extra pairs, exact duplicates dropped. Extra pairs keep the side their producer gave
    them: it split them by its own leakage unit (movies: pseudo-queries by movie, requests by entity filling)."""
    return Splits(train=tuple(drop_duplicates(splits.train + extras.train)),
                  validation=tuple(drop_duplicates(splits.validation + extras.validation)),
                  test=tuple(drop_duplicates(splits.test + extras.test)))


def clip(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters, at a word boundary where there is one."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def item_documents(items: list[dict[str, Any]], train: Sequence[Pair],
                   max_review_chars: int) -> tuple[list[dict[str, str]], set[str]]:
    """Each item's document plus, when `max_review_chars` > 0 (items with no text of their own), snippets of its
    TRAINING reviews only, since a held-out review quoted in its positive's document is found by string matching;
    and the groups (review bodies) quoted, for `without_quoted_reviews`."""
    reviews: dict[str, list[Pair]] = defaultdict(list)
    if max_review_chars > 0:
        for pair in train:
            if pair.kind == "review":
                reviews[pair.item_id].append(pair)
    documents, quoted = [], set()
    for item in items:
        snippets: list[str] = []
        for pair in reviews[item["item_id"]]:
            if sum(len(s) + 3 for s in snippets) >= max_review_chars:
                break
            snippets.append(pair.query)
            quoted.add(pair.group)
        document = item["document"]
        if snippets:
            document += "\nReviews: " + clip(" | ".join(snippets), max_review_chars)
        documents.append({"item_id": item["item_id"], "document": document})
    return documents, quoted


def without_cloze_queries(documents: list[dict[str, str]], pairs: Sequence[Pair]) -> list[dict[str, str]]:
    """Each document without the inverse-cloze queries (CLOZE_KINDS) of its own item, on every side: a sentence
    cut from the item's own text would otherwise be found by string matching, not by its meaning."""
    cut: dict[str, list[str]] = defaultdict(list)
    for pair in pairs:
        if pair.kind in CLOZE_KINDS:
            cut[pair.item_id].append(pair.query)
    return [{"item_id": d["item_id"], "document": unquoted(d["document"], cut[d["item_id"]])} for d in documents]


def without_quoted_reviews(splits: Splits, quoted: set[str]) -> Splits:
    """`splits` less the training pairs whose group a document quotes: a query quoted in its own positive
    document teaches the encoder string matching, not intent."""
    return replace(splits, train=tuple(p for p in splits.train if p.group not in quoted))


def with_hard_forms(splits: Splits) -> Splits:
    """Training also on each training query's hard form (where it differs), the shape the test queries have. A
    hard form keeps its pair's group, so the split holds, but must pass `without_held_out_queries` after."""
    hard = [replace(p, query_id=f"{p.query_id}#hard", query=p.hard_query, kind=f"{p.kind}_hard")
            for p in splits.train if normalise(p.hard_query) != normalise(p.query)]
    return replace(splits, train=tuple(drop_duplicates([*splits.train, *hard])))


def without_held_out_queries(splits: Splits) -> Splits:
    """`splits` less the training pairs whose query is a validation or test query in either form (normalised):
    the group split keeps each review on one side, but a generic hard form ("Love it!") recurs across reviews."""
    held_out = {normalise(q) for p in splits.held_out for q in (p.query, p.hard_query)}
    return replace(splits, train=tuple(p for p in splits.train if normalise(p.query) not in held_out))


def popularity(items: list[dict[str, Any]], interactions: Iterable[dict[str, Any]], held_out: set[str],
               min_rating: float) -> pa.Table:
    """Each item's positives (rating >= min_rating), skipping interactions whose review body (as a group) is in
    `held_out`: the popularity prior (serving.prior) must not count a held-out review toward its own item."""
    counts = dict.fromkeys((item["item_id"] for item in items), 0)
    for row in interactions:
        if row["rating"] >= min_rating and normalise(row["text"] or "") not in held_out:
            counts[row["item_id"]] += 1
    return pa.table({"item_id": list(counts), "positives": list(counts.values())}, schema=POPULARITY)


def check_items_known(item_ids: Iterable[tuple[str, str]], known: set[str], source: str) -> None:
    """Fail on the first (ref, item_id) whose item is not in the catalog."""
    for ref, item_id in item_ids:
        if item_id not in known:
            raise ValueError(f"{source}: row {ref!r} names item_id {item_id!r}, which items.parquet lacks")


def pairs_table(pairs: Sequence[Pair], hard: bool = False) -> pa.Table:
    rows = [{"query_id": p.query_id, "query": p.hard_query if hard else p.query, "item_id": p.item_id,
             "kind": p.kind} for p in pairs]
    return pa.Table.from_pylist(rows, schema=PAIRS)


def output_tables(splits: Splits, documents: list[dict[str, str]], prior: pa.Table) -> dict[str, pa.Table]:
    """Name -> table. `test` holds the test rows as queried (the primary protocol: a whole review, a
    pseudo-query), `test_hard` the same rows by their hard form (a review's title alone), `validation` the rows
    later choices (checkpoint, encoder, fusion, efSearch) are tuned on, queried as the primary test is."""
    return {"train": pairs_table(splits.train), "validation": pairs_table(splits.validation),
            "test": pairs_table(splits.test), "test_hard": pairs_table(splits.test, hard=True),
            "documents": pa.Table.from_pylist(documents, schema=DOCUMENTS), "popularity": prior}


def documents_changed(before: Sequence[dict[str, str]], after: Sequence[dict[str, str]]) -> int:
    return sum(a["document"] != b["document"] for a, b in zip(before, after))


def side_metrics(split_pairs: Splits, final: Splits) -> dict[str, Any]:
    """Each side's pair count and kinds; test_share counts train as split, before any training pair was dropped."""
    sides = {"train": final.train, "validation": final.validation, "test": final.test}
    kinds = sorted({p.kind for p in final.all})
    metrics: dict[str, Any] = {name: len(pairs) for name, pairs in sides.items()}
    metrics |= {f"{name}_by_kind": {k: sum(p.kind == k for p in pairs) for k in kinds} for name, pairs in sides.items()}
    held_out = len(final.held_out)
    metrics["test_share"] = round(len(final.test) / (held_out + len(split_pairs.train)), 4) if final.test else 0.0
    return metrics


def sizing_notes(final: Splits, sized: PairsParams, params: PairsParams) -> dict[str, Any]:
    """The fractions used where `sized_fractions` raised them, and a warning for each held-out side still short."""
    notes: dict[str, Any] = {}
    if sized != params:
        notes["fractions_raised"] = {"test": round(sized.test_fraction, 4),
                                     "validation": round(sized.validation_fraction, 4)}
    warnings = [f"{name}: {len(rows)} queries, fewer than pairs.min_{name}_queries {minimum}: its CIs will be wide"
                for name, rows, minimum in (("test", final.test, params.min_test_queries),
                                            ("validation", final.validation, params.min_validation_queries))
                if len(rows) < minimum]
    if warnings:
        notes["warnings"] = warnings
    return notes


def build(items: list[dict[str, Any]], interactions: Rows, params: PairsParams,
          extra_train: Sequence[Pair] = (), extra_validation: Sequence[Pair] = (),
          extra_test: Sequence[Pair] = ()) -> tuple[dict[str, pa.Table], dict[str, Any]]:
    """All outputs (name -> table) and the metrics, from already-validated inputs."""
    made = made_pairs(items, interactions, params)
    unique = drop_duplicates(sorted(made, key=lambda p: p.query_id))  # row order must not matter
    sized = sized_fractions((p.group for p in unique), params)
    extras = Splits(train=tuple(extra_train), validation=tuple(extra_validation), test=tuple(extra_test))
    split_pairs = with_extras(split(unique, sized), extras)
    item_docs, quoted = item_documents(items, split_pairs.train, params.document_review_chars)
    documents = without_cloze_queries(item_docs, split_pairs.all)
    not_quoted = without_quoted_reviews(split_pairs, quoted)
    candidates = with_hard_forms(not_quoted) if params.train_hard_queries else not_quoted
    final = without_held_out_queries(candidates)
    prior = popularity(items, interactions, {p.group for p in final.held_out}, params.min_rating)
    metrics = {"items": len(items), "interactions": len(interactions), "pairs_made": len(made),
               "pairs_extra": len(extras.all), "duplicates_dropped": len(made) - len(unique),
               **side_metrics(split_pairs, final),
               "train_quoted_in_documents": len(split_pairs.train) - len(not_quoted.train),
               "train_dropped_as_held_out_query": len(candidates.train) - len(final.train),
               "documents_with_reviews": documents_changed(items, item_docs),
               "documents_with_cloze_cut": documents_changed(item_docs, documents),
               "popularity_positives": sum(prior["positives"].to_pylist()), **sizing_notes(final, sized, params)}
    return output_tables(final, documents, prior), metrics


def read(path: Path, schema: pa.Schema) -> list[dict[str, Any]]:
    return conform(pq.read_table(path), schema, str(path)).to_pylist()


@dataclass(frozen=True)
class ParquetRows:
    """A Parquet file's rows as dicts, read a batch at a time on every pass over them: a large category's
    interactions do not fit in memory as Python objects (2.5M reviews held whole: ~3 GB of dicts)."""

    path: Path
    schema: pa.Schema
    batch_rows: int = 65_536
    columns: tuple[str, ...] | None = None  # only these of the schema's columns (None: all)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        columns = list(self.columns or self.schema.names)
        schema = pa.schema([self.schema.field(name) for name in columns])
        for batch in pq.ParquetFile(self.path).iter_batches(self.batch_rows, columns=columns):
            yield from conform(pa.Table.from_batches([batch]), schema, str(self.path)).to_pylist()

    def __len__(self) -> int:
        return pq.ParquetFile(self.path).metadata.num_rows


def extra_pair_files(ingest: Path) -> dict[str, list[Path]]:
    """Per side, the extra pairs other stages made for this catalog: `<ingest>/extra_pairs/<stage>/<side>_pairs.parquet`,
    in stage-name order."""
    folders = sorted(path for path in (ingest / EXTRA_PAIRS).glob("*") if path.is_dir())
    return {name: [f / f"{name}_pairs.parquet" for f in folders if (f / f"{name}_pairs.parquet").is_file()]
            for name in ("train", "validation", "test")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec pairs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--ingest", required=True, type=Path,
                        help=f"folder with items/interactions.parquet (and any {EXTRA_PAIRS}/<stage>/)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = PairsParams.from_params(load_section("pairs", args.params), catalog_block(args.catalog, args.params),
                                     args.catalog)

    items = read(args.ingest / "items.parquet", ITEMS)
    interactions = ParquetRows(args.ingest / "interactions.parquet", INTERACTIONS)
    known = {item["item_id"] for item in items}
    check_items_known(((r["row_ref"], r["item_id"]) for r in replace(interactions, columns=("row_ref", "item_id"))),
                      known, "interactions.parquet")
    extra: dict[str, list[Pair]] = {"train": [], "validation": [], "test": []}
    for name, paths in extra_pair_files(args.ingest).items():
        for path in paths:
            made = extra_pairs(conform(pq.read_table(path), PAIRS, str(path)))
            check_items_known(((p.query_id, p.item_id) for p in made), known, str(path))
            extra[name] += made

    tables, metrics = build(items, interactions, params, extra["train"], extra["validation"], extra["test"])
    for name, table in tables.items():
        write_parquet(table, args.out / f"{name}.parquet")
    write_json(metrics, args.out / "pairs.json")
    print(f"pairs {args.catalog}: {metrics['train']} train, {metrics['validation']} validation, {metrics['test']} test, "
          f"{metrics['duplicates_dropped']} duplicates dropped")
    for warning in metrics.get("warnings", []):
        print(f"pairs {args.catalog}: warning: {warning}")
    return 0
