"""pairs stage: (query, positive item) pairs, a leakage-free train/validation/test split, and the documents.

    semrec pairs --catalog fashion --ingest data/fashion/ingest --out data/fashion/pairs

Settings: params `pairs`, with the catalog's overrides (`catalogs.<catalog>.pairs`) laid over it.
Queries come from one source per catalog (`queries`):
- `reviews`: query = review summary + body of a positive review (rating >= min_rating, body of at least
  `review_min_words` words); its hard form is the summary alone, or the body's first
  `hard_query_tokens` words when there is no summary.
- `co_liked` (no review text): query = the document of an item a user liked, positive = the next item
  the same user liked (by time); at most `co_liked_per_user` pairs per user, `co_liked_max_pairs` in all.
  Its hard form is the liked item's bare title.
- `none`: only the extra pairs below (movies: text-grounded pseudo-queries and synthetic requests; co-liked
  pairs taught co-occurrence, not content, and lost on validation).
Extra pairs made and split elsewhere (movies: pseudo-queries split by movie, synthetic conversational
queries split by entity filling), in the PAIRS schema, are read from `<ingest>/extra_pairs/<stage>/<side>_pairs.parquet`
(side: train, validation, test; stages in name order); they keep their side and are their own hard form. An inverse-cloze pair (kind `ict`: a sentence of the item's own summary) is cut out
of its item's document, so no query is a substring of the document it must find.
`test.parquet` = the test rows as queried (the primary protocol: a whole review, a pseudo-query);
`test_hard.parquet` = the same rows, each with its query's hard form (a review's title alone);
`validation.parquet` = the validation rows as queried, what later choices (checkpoint, encoder, fusion,
efSearch) are tuned on.

Exact duplicate (query, item) pairs are dropped, then pairs are split by group (pipelines.common.split): the
review body for reviews, the query text otherwise, so no review text and no (query, item) pair is on
two sides. A side that would hold fewer than `min_test_queries` / `min_validation_queries` groups gets
a larger fraction, up to half the groups for the two (`sized_fractions`); pairs.json then records the
fractions used, and warns where a side is still short. `documents.parquet` holds each item's ingest document; where `document_review_chars` > 0
(catalogs whose items have no text of their own) it adds snippets of that item's TRAINING reviews only;
the reviews so quoted are then dropped from the training queries. `train_hard_queries: true` also trains
on each training query's hard form, the shape the test queries have. `popularity.parquet` counts each item's
positive interactions (rating >= min_rating) except those whose review is a validation or test query, the
popularity prior's input (serving.prior): a held-out review never counts toward its own item.
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


def review_query(summary: str, body: str) -> str:
    if not summary:
        return body
    return f"{summary} {body}" if summary[-1] in ".!?" else f"{summary}. {body}"


def review_pairs(interactions: Iterable[dict[str, Any]], params: PairsParams) -> list[Pair]:
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
    """Item-to-item pairs: each user's liked items in time order, consecutive ones paired (seeded sample).

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


def extra_pairs(table: pa.Table) -> list[Pair]:
    """Pairs made and split elsewhere (synthetic conversational queries: already short, their own hard form)."""
    return [Pair(query_id=r["query_id"], query=r["query"], item_id=r["item_id"], kind=r["kind"],
                 group=normalise(r["query"]), hard_query=r["query"]) for r in table.to_pylist()]


def hard_forms(pairs: list[Pair]) -> list[Pair]:
    """Each pair again with its hard (test-time shaped) query, where that differs: same group, so the
    split is unchanged."""
    return [replace(p, query_id=f"{p.query_id}#hard", query=p.hard_query, kind=f"{p.kind}_hard")
            for p in pairs if normalise(p.hard_query) != normalise(p.query)]


def drop_duplicates(pairs: list[Pair]) -> list[Pair]:
    """Keep the first of each (normalised query, item) pair."""
    unique: dict[tuple[str, str], Pair] = {}
    for pair in pairs:
        unique.setdefault((normalise(pair.query), pair.item_id), pair)
    return list(unique.values())


def split(pairs: list[Pair], params: PairsParams) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """(train, validation, test) by each pair's group: a group lies wholly on one side."""
    sides: dict[Side, list[Pair]] = {"train": [], "validation": [], "test": []}
    for pair in pairs:
        sides[side(pair.group, params.seed, params.test_fraction, params.validation_fraction)].append(pair)
    return sides["train"], sides["validation"], sides["test"]


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


def clip(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters, at a word boundary where there is one."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def item_documents(items: list[dict[str, Any]], train: list[Pair],
                   max_review_chars: int) -> tuple[list[dict[str, str]], set[str]]:
    """Each item's document plus, when `max_review_chars` > 0, snippets of its training reviews; and the
    groups (review bodies) quoted, which are then no training query: a query quoted in its own positive
    document teaches the encoder string matching, not intent."""
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
    """Each document without the inverse-cloze queries (CLOZE_KINDS) of its own item, on every side."""
    cut: dict[str, list[str]] = defaultdict(list)
    for pair in pairs:
        if pair.kind in CLOZE_KINDS:
            cut[pair.item_id].append(pair.query)
    return [{"item_id": d["item_id"], "document": unquoted(d["document"], cut[d["item_id"]])} for d in documents]


def popularity(items: list[dict[str, Any]], interactions: Iterable[dict[str, Any]], held_out: set[str],
               min_rating: float) -> pa.Table:
    """Each item's positives, skipping interactions whose review body (as a group) is in `held_out`."""
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


def pairs_table(pairs: list[Pair], hard: bool = False) -> pa.Table:
    rows = [{"query_id": p.query_id, "query": p.hard_query if hard else p.query, "item_id": p.item_id,
             "kind": p.kind} for p in pairs]
    return pa.Table.from_pylist(rows, schema=PAIRS)


def build(items: list[dict[str, Any]], interactions: Rows, params: PairsParams,
          extra_train: Sequence[Pair] = (), extra_validation: Sequence[Pair] = (),
          extra_test: Sequence[Pair] = ()) -> tuple[dict[str, pa.Table], dict[str, Any]]:
    """All outputs (name -> table) and the metrics, from already-validated inputs.

    Extra pairs keep their producer's split (train, validation or test). No training query is a validation or test
    query in either form: a generic hard form ("Love it!") can be both, and such training pairs are
    dropped. Validation pairs are queried as the primary test is (whole queries); test_hard adds the hard form."""
    if params.queries == "reviews":
        made = review_pairs(interactions, params)
    elif params.queries == "co_liked":
        made = co_liked_pairs(interactions, {item["item_id"]: item for item in items}, params)
    else:
        made = []
    pairs = drop_duplicates(sorted(made, key=lambda p: p.query_id))  # row order must not matter
    sized = sized_fractions((p.group for p in pairs), params)
    train, validation, test = split(pairs, sized)
    validation = drop_duplicates(validation + list(extra_validation))
    test = drop_duplicates(test + list(extra_test))
    merged = drop_duplicates(train + list(extra_train))
    item_docs, quoted = item_documents(items, merged, params.document_review_chars)
    with_reviews = sum(d["document"] != i["document"] for d, i in zip(item_docs, items))
    cut_docs = without_cloze_queries(item_docs, [*merged, *validation, *test])
    not_quoted = [p for p in merged if p.group not in quoted]
    candidates = drop_duplicates(not_quoted + hard_forms(not_quoted) if params.train_hard_queries else not_quoted)
    held_out = {normalise(q) for p in test + validation for q in (p.query, p.hard_query)}
    train = [p for p in candidates if normalise(p.query) not in held_out]
    kinds = sorted({p.kind for p in train + validation + test})
    tables = {
        "train": pairs_table(train),
        "validation": pairs_table(validation),
        "test": pairs_table(test),
        "test_hard": pairs_table(test, hard=True),
        "documents": pa.Table.from_pylist(cut_docs, schema=DOCUMENTS),
        "popularity": popularity(items, interactions, {p.group for p in validation + test}, params.min_rating),
    }
    metrics = {
        "items": len(items),
        "interactions": len(interactions),
        "pairs_made": len(made),
        "pairs_extra": len(extra_train) + len(extra_validation) + len(extra_test),
        "duplicates_dropped": len(made) - len(pairs),
        "train": len(train),
        "validation": len(validation),
        "test": len(test),
        "test_share": round(len(test) / (len(test) + len(validation) + len(merged)), 4) if test else 0.0,
        "train_by_kind": {k: sum(p.kind == k for p in train) for k in kinds},
        "validation_by_kind": {k: sum(p.kind == k for p in validation) for k in kinds},
        "test_by_kind": {k: sum(p.kind == k for p in test) for k in kinds},
        "train_quoted_in_documents": len(merged) - len(not_quoted),
        "train_dropped_as_held_out_query": len(candidates) - len(train),
        "documents_with_reviews": with_reviews,
        "documents_with_cloze_cut": sum(a != b for a, b in zip(item_docs, cut_docs)),
        "popularity_positives": sum(tables["popularity"]["positives"].to_pylist()),
    }
    if sized != params:
        metrics["fractions_raised"] = {"test": round(sized.test_fraction, 4),
                                       "validation": round(sized.validation_fraction, 4)}
    warnings = [f"{name}: {len(rows)} queries, fewer than pairs.min_{name}_queries {minimum}: its CIs will be wide"
                for name, rows, minimum in (("test", test, params.min_test_queries),
                                            ("validation", validation, params.min_validation_queries))
                if len(rows) < minimum]
    if warnings:
        metrics["warnings"] = warnings
    return tables, metrics


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
