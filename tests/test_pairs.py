"""pairs: leakage-free, seeded split on real review and rating slices; documents carry no test review."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pairs_slices import fashion_slice, movies_slice

from pipelines import pairs
from pipelines.common.schemas import INTERACTIONS, PAIRS
from pipelines.common.split import normalise
from pipelines.pairs import PairsParams, build

# min_*_queries 0: these slices test the split at its fractions (raising them is tests/test_onboarding.py's)
PARAMS = {"seed": 42, "test_fraction": 0.2, "validation_fraction": 0.1, "min_rating": 4.0, "review_min_words": 20,
          "hard_query_tokens": 20, "co_liked_per_user": 5, "co_liked_max_pairs": 150, "queries": "reviews",
          "document_review_chars": 0, "train_hard_queries": False, "min_test_queries": 0, "min_validation_queries": 0}
CATALOGS = {"movies": {"source": "data/fetched", "ingest": {"plugin": "movielens_wikidata"},
                       "pairs": {"queries": "co_liked"}},
            "fashion": {"source": "data/fetched", "ingest": {"plugin": "womens_clothing"},
                        "pairs": {"queries": "reviews", "document_review_chars": 1200}}}


def pairs_params(catalog: str, section: dict | None = None, **overrides) -> PairsParams:
    """PairsParams of `catalog`: `section` (default PARAMS) with its block's pairs overrides and `overrides`."""
    block = CATALOGS[catalog]
    return PairsParams.from_params(section or PARAMS, block | {"pairs": block["pairs"] | overrides}, catalog)


def write_params(path: Path, catalogs: dict = CATALOGS) -> Path:
    path.write_text(yaml.safe_dump({"pairs": PARAMS, "catalogs": catalogs}))
    return path


def write_extra(ingest: Path, stage: str, side: str, rows: list[dict]) -> None:
    """Extra pairs another stage made, where the pairs stage reads them (<ingest>/extra_pairs/<stage>/)."""
    folder = ingest / pairs.EXTRA_PAIRS / stage
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=PAIRS), folder / f"{side}_pairs.parquet")


@pytest.fixture(scope="module")
def fashion() -> tuple[list[dict], list[dict]]:
    items, interactions = fashion_slice()
    rows = interactions.to_pylist()
    # the same review body posted twice, under another summary and item: it must stay on one side
    rows += [dict(row, row_ref=f"copy:{i}", summary="Copy", item_id=rows[i + 1]["item_id"])
             for i, row in enumerate(rows[:200])]
    return items.to_pylist(), rows


def bodies(table: pa.Table, interactions: list[dict]) -> set[str]:
    body = {row["row_ref"]: normalise(row["text"] or "") for row in interactions}
    return {body[ref] for ref in table["query_id"].to_pylist()}


def test_review_split_shares_no_review_text_or_pair_and_documents_hold_no_test_review(fashion):
    items, interactions = fashion
    tables, metrics = build(items, interactions, pairs_params("fashion"))
    train, validation, test = tables["train"], tables["validation"], tables["test"]
    assert train.num_rows > 150 and test.num_rows > 50 and validation.num_rows > 25
    sides = [bodies(t, interactions) for t in (train, validation, test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    as_pairs = lambda t: set(zip(map(normalise, t["query"].to_pylist()), t["item_id"].to_pylist()))  # noqa: E731
    assert not as_pairs(train) & (as_pairs(test) | as_pairs(validation))

    documents = " ".join(" ".join(tables["documents"]["document"].to_pylist()).lower().split())
    quoted = {b for b in map(normalise, (r["text"] or "" for r in interactions)) if b and b[:200] in documents}
    assert len(quoted) > 50  # training reviews are quoted in documents ...
    assert not quoted & (sides[1] | sides[2])  # ... held-out reviews never
    assert not quoted & bodies(train, interactions)  # ... and a quoted review is no training query
    assert metrics["train_quoted_in_documents"] > 0
    assert tables["documents"]["item_id"].to_pylist() == [i["item_id"] for i in items]
    assert metrics["documents_with_reviews"] > 0


def test_popularity_counts_every_positive_except_held_out_reviews(fashion):
    items, interactions = fashion
    tables, metrics = build(items, interactions, pairs_params("fashion"))
    held_out = bodies(tables["validation"], interactions) | bodies(tables["test"], interactions)
    liked = [row for row in interactions if row["rating"] >= 4]
    held = [row for row in liked if normalise(row["text"] or "") in held_out]  # copies under other items too
    assert len(held) > 25
    counts = dict(zip(tables["popularity"]["item_id"].to_pylist(), tables["popularity"]["positives"].to_pylist()))
    assert list(counts) == [item["item_id"] for item in items]
    assert counts == {item: sum(r["item_id"] == item for r in liked) - sum(r["item_id"] == item for r in held)
                      for item in counts}
    assert metrics["popularity_positives"] == len(liked) - len(held)


def test_hard_queries_are_the_summary_or_the_first_words_of_the_body(fashion):
    items, interactions = fashion
    tables, _ = build(items, interactions, pairs_params("fashion"))
    test, hard = tables["test"], tables["test_hard"]
    assert hard["query_id"].to_pylist() == test["query_id"].to_pylist()
    by_ref = {row["row_ref"]: row for row in interactions}
    for query_id, query in zip(hard["query_id"].to_pylist(), hard["query"].to_pylist()):
        row = by_ref[query_id]
        assert query == ((row["summary"] or "").strip() or " ".join(row["text"].split()[:20]))
        assert len(query.split()) <= 20 < len(row["text"].split())


def test_split_is_seeded_and_independent_of_row_order(fashion):
    items, interactions = fashion
    params = pairs_params("fashion")
    shuffled = interactions[:]
    random.Random(7).shuffle(shuffled)
    first, _ = build(items, interactions, params)
    again, _ = build(items, shuffled, params)
    assert first["train"].num_rows > 0
    for name in ("train", "validation", "test", "test_hard", "documents"):
        assert first[name].equals(again[name])
    other, _ = build(items, interactions, pairs_params("fashion", PARAMS | {"seed": 43}))
    assert set(other["test"]["query_id"].to_pylist()) != set(first["test"]["query_id"].to_pylist())


def test_co_liked_pairs_respect_caps_users_and_split_by_query():
    items, interactions = movies_slice()
    rows = interactions.to_pylist()
    tables, _ = build(items.to_pylist(), rows, pairs_params("movies"))
    train, test = tables["train"].to_pylist(), tables["test"].to_pylist()
    assert len(train) + tables["validation"].num_rows + len(test) == PARAMS["co_liked_max_pairs"]
    liked = defaultdict(set)
    for row in rows:
        if row["rating"] >= 4:
            liked[row["item_id"]].add(row["user_id"])
    document = {i["item_id"]: i["document"] for i in items.to_pylist()}
    for pair in train + test:
        anchor, positive = pair["query_id"].split(">")
        assert pair["query"] == document[anchor] and pair["item_id"] == positive
        assert liked[anchor] & liked[positive], "anchor and positive are liked by one user"
    assert not {p["query"] for p in train} & {p["query"] for p in test}
    title = {i["item_id"]: i["title"] for i in items.to_pylist()}
    hard = tables["test_hard"].to_pylist()
    assert [(p["query_id"], p["item_id"]) for p in hard] == [(p["query_id"], p["item_id"]) for p in test]
    assert [p["query"] for p in hard] == [title[p["query_id"].split(">")[0]] for p in test]


def write_ingest(folder: Path, items: pa.Table, interactions: pa.Table) -> None:
    folder.mkdir(parents=True)
    pq.write_table(items, folder / "items.parquet")
    pq.write_table(interactions, folder / "interactions.parquet")


def test_interactions_are_read_a_batch_at_a_time_on_every_pass(tmp_path):
    _, interactions = movies_slice(users=3)
    pq.write_table(interactions, tmp_path / "interactions.parquet", row_group_size=4)
    rows = pairs.ParquetRows(tmp_path / "interactions.parquet", INTERACTIONS, batch_rows=3)
    whole = interactions.to_pylist()
    assert len(rows) == len(whole) > 6 and list(rows) == whole and list(rows) == whole  # twice: a pass re-reads


def test_stage_refuses_an_interaction_whose_item_is_not_in_the_catalog(tmp_path):
    items, interactions = movies_slice(users=3)
    stray = interactions.slice(0, 1).set_column(interactions.schema.get_field_index("item_id"), "item_id",
                                                pa.array(["no-such-item"])).cast(interactions.schema)
    write_ingest(tmp_path / "ingest", items, pa.concat_tables([interactions, stray]))
    write_params(tmp_path / "params.yaml")
    ref = stray["row_ref"][0].as_py()
    with pytest.raises(ValueError, match=f"interactions.parquet: row '{ref}' names item_id 'no-such-item'"):
        pairs.main(["--catalog", "movies", "--ingest", str(tmp_path / "ingest"), "--out", str(tmp_path / "pairs"),
                    "--params", str(tmp_path / "params.yaml")])


def test_stage_keeps_the_split_of_extra_pairs_and_refuses_unknown_items(tmp_path):
    items, interactions = movies_slice(users=10)
    write_ingest(tmp_path / "ingest", items, interactions)
    write_params(tmp_path / "params.yaml")
    item_id = items["item_id"][0].as_py()
    synthetic = {"query_id": "s1", "query": "a feel-good movie for tonight", "item_id": item_id, "kind": "synthetic"}
    held_out = synthetic | {"query_id": "s2", "query": "a heist film from the 1990s"}
    tuning = synthetic | {"query_id": "s3", "query": "something by a director I love"}
    for name, row in (("train", synthetic), ("validation", tuning), ("test", held_out)):
        write_extra(tmp_path / "ingest", "synth", name, [row])
    argv = ["--catalog", "movies", "--ingest", str(tmp_path / "ingest"), "--out", str(tmp_path / "pairs"),
            "--params", str(tmp_path / "params.yaml")]
    assert pairs.main(argv) == 0
    metrics = json.loads((tmp_path / "pairs" / "pairs.json").read_text())
    read = lambda name: pq.read_table(tmp_path / "pairs" / f"{name}.parquet").to_pylist()  # noqa: E731
    assert metrics["pairs_extra"] == 3 and synthetic in read("train") and held_out in read("test")
    assert held_out in read("test_hard") and tuning in read("validation")  # a request is its own hard form
    assert all(metrics[f"{side}_by_kind"]["synthetic"] == 1 for side in ("train", "validation", "test"))

    write_extra(tmp_path / "ingest", "synth", "train", [synthetic | {"item_id": "no-such-item"}])
    with pytest.raises(ValueError, match="'s1' names item_id 'no-such-item'"):
        pairs.main(argv)


def test_training_on_hard_forms_never_trains_on_a_held_out_query(fashion):
    items, interactions = fashion
    params = pairs_params("fashion", train_hard_queries=True)
    tables, metrics = build(items, interactions, params)
    plain, _ = build(items, interactions, pairs_params("fashion"))
    train = tables["train"].to_pylist()
    assert plain["test_hard"].equals(tables["test_hard"]) and plain["documents"].equals(tables["documents"])
    assert metrics["train_by_kind"]["review_hard"] > 100
    held_out = {normalise(q) for name in ("validation", "test", "test_hard") for q in tables[name]["query"].to_pylist()}
    assert not {normalise(p["query"]) for p in train} & held_out
    assert metrics["train_dropped_as_held_out_query"] > 0  # generic summaries ("Love it!") are on two sides
    hard = [p for p in train if p["kind"] == "review_hard"]
    full = {p["query_id"]: p for p in train if p["kind"] == "review"}
    for pair in hard:
        assert pair["item_id"] == full.get(pair["query_id"].removesuffix("#hard"), pair)["item_id"]


def review(query_id: str, query: str, hard_query: str = "") -> pairs.Pair:
    """A review pair grouped by its own text, its hard form `hard_query` (default: the query itself)."""
    return pairs.Pair(query_id=query_id, query=query, item_id="dress", kind="review", group=normalise(query),
                      hard_query=hard_query or query)


def test_a_training_query_that_is_a_held_out_query_in_either_form_is_dropped():
    generic = review("t1", "Love it!")
    repeated = review("t2", "Runs small, order a size up")
    kept = review("t3", "Soft fabric and a true fit", hard_query="Love it!")  # its own hard form does not count
    splits = pairs.Splits(train=(generic, repeated, kept),
                          validation=(review("v1", "runs  SMALL, order a size up"),),
                          test=(review("x1", "Bought it for a wedding and wore it all night", hard_query="love IT!"),))
    dropped = pairs.without_held_out_queries(splits)
    assert dropped.train == (kept,)
    assert (dropped.validation, dropped.test) == (splits.validation, splits.test)


def test_only_training_reviews_that_a_document_quotes_are_dropped():
    quoted, other = review("t1", "Warm coat, great zip"), review("t2", "Thin fabric")
    held = review("x1", "Warm coat, great zip")  # not a training query: nothing to drop
    splits = pairs.Splits(train=(quoted, other), validation=(), test=(held,))
    assert pairs.without_quoted_reviews(splits, {quoted.group}) == pairs.Splits(train=(other,), validation=(),
                                                                                 test=(held,))

def test_unknown_query_source_is_refused_early():
    with pytest.raises(ValueError, match="catalogs.fashion.pairs.queries must be one of"):
        pairs_params("fashion", queries="clicks")


@pytest.mark.parametrize("fractions", [(0.0, 0.1), (0.5, 0.5), (0.2, -0.1)])
def test_split_fractions_are_checked(fractions):
    test, validation = fractions
    with pytest.raises(ValueError, match="test_fraction > 0, validation_fraction >= 0 and their sum < 1"):
        pairs_params("fashion", PARAMS | {"test_fraction": test, "validation_fraction": validation})


def test_only_extra_pairs_when_no_query_source_and_cloze_sentences_leave_their_documents(tmp_path):
    items, interactions = movies_slice(users=10)
    first = items.to_pylist()[0]
    sentence = "A lonely keeper finds a map to the island."
    items = pa.Table.from_pylist([dict(first, document=f"{first['document']} [SEP] {sentence} It rains."),
                                  *items.to_pylist()[1:]], schema=items.schema)
    write_ingest(tmp_path / "ingest", items, interactions)
    write_params(tmp_path / "params.yaml", {"movies": CATALOGS["movies"] | {"pairs": {"queries": "none"}}})
    cloze = {"query_id": "ict:1", "query": sentence, "item_id": first["item_id"], "kind": "ict"}
    template = {"query_id": "t:1", "query": "a 1990s drama", "item_id": first["item_id"], "kind": "pseudo_template"}
    request = {"query_id": "s:1", "query": "something moving", "item_id": first["item_id"], "kind": "synthetic"}
    for stage, side, rows in (("pseudo", "test", [cloze]), ("pseudo", "train", [template]),
                              ("synth", "train", [request])):
        write_extra(tmp_path / "ingest", stage, side, rows)
    argv = ["--catalog", "movies", "--ingest", str(tmp_path / "ingest"), "--out", str(tmp_path / "pairs"),
            "--params", str(tmp_path / "params.yaml")]
    assert pairs.main(argv) == 0
    metrics = json.loads((tmp_path / "pairs" / "pairs.json").read_text())
    assert metrics["pairs_made"] == 0 and metrics["train"] == 2 and metrics["test"] == 1  # extras only, both files
    documents = pq.read_table(tmp_path / "pairs" / "documents.parquet").to_pylist()
    assert documents[0]["document"] == f"{first['document']} [SEP] It rains."  # the held-out sentence is cut
    assert [d["document"] for d in documents[1:]] == [i["document"] for i in items.to_pylist()[1:]]
    assert metrics["documents_with_cloze_cut"] == 1
