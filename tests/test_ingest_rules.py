"""Every rule of the table in pipelines/ingest/filters.py, in both engines: its comparison spelled alike for
Python values and Polars expressions, and, end to end, a row that fails only that rule quarantined at its
step with its field and reason while the rows beside it that pass are kept."""

from __future__ import annotations

import json

import polars as pl
import pytest
from ingest_slices import FILTERS, ingest, ingest_params

from pipelines.ingest.filters import BELOW, BELOW_IF_ANY, FALSE, OTHER_THAN, RULE, TABLE, Rule, Rules

RULES = Rules.from_params(FILTERS)
MEASURES = {BELOW: [0, 1, 2.5, 3, 3.5, 4, 4.5, 5, 10], BELOW_IF_ANY: list(range(8)), FALSE: [True, False],
            OTHER_THAN: [None, "en", "fr", "un"]}
ENGLISH = "The fabric is soft and the fit is true to size."
FRENCH = "Le tissu est doux et la coupe est parfaite pour moi."


def review(item: str = "i1", stars: float = 5.0, **fields: object) -> dict:
    """A line of ratings.jsonl; with no user, the set rules skip it."""
    return {"item": item, "stars": stars, **fields}


# Per rule: (rows that fail it and no other, rows that pass every rule).
CASES: dict[str, tuple[list[dict], list[dict]]] = {
    "rating": ([review(stars=3.5)], [review(stars=4.0)]),
    "tokens": ([review(body="only four words here")], [review(body=ENGLISH)]),
    "item": ([review("gone")], [review("i2")]),
    "language": ([review(title="Superbe", body=FRENCH)], [review(title="Lovely", body=ENGLISH)]),
    # the later i1 and the i2 with no time repeat d's earliest ones; d keeps three positives
    "duplicate": ([review(user="d", ts=9), review("i2", user="d")],
                  [review(user="d", ts=3), review("i2", user="d", ts=1), review("i3", user="d")]),
    "user_positives": ([review(user="p"), review("i2", user="p")], [review(f"i{n}", user="q") for n in (1, 2, 3)]),
}
ENGINES = ("polars", "beam")


def test_every_rule_has_a_case_and_a_threshold_in_the_params():
    assert list(CASES) == list(RULE)
    assert {rule.param for rule in TABLE} - {None} == set(vars(RULES))
    assert {rule.kind for rule in TABLE} <= set(MEASURES)


@pytest.mark.parametrize("rule", TABLE, ids=lambda rule: rule.step)
def test_each_rule_fails_the_same_measures_on_python_values_and_polars_expressions(rule: Rule):
    measures = MEASURES[rule.kind]
    column = pl.Series("measure", measures, strict=False)
    polars = pl.select(rule.fails_expr(pl.lit(column), RULES)).to_series().fill_null(False).to_list()
    assert polars == [rule.fails(measure, RULES) for measure in measures]


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> dict[str, dict[str, dict]]:
    """Per engine: each case row's outcome by row_ref, "kept" or its quarantine row."""
    raw = tmp_path_factory.mktemp("rules")
    rows = [row for failing, passing in CASES.values() for row in (*failing, *passing)]
    (raw / "ratings.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (raw / "items.jsonl").write_text("".join(json.dumps({"id": f"i{n}", "name": f"Item {n}"}) + "\n"
                                             for n in (1, 2, 3)))
    params = ingest_params("shop", {"plugin": "generic", "interactions": {"path": "ratings.jsonl", "columns": {
        "user_id": "user", "item_id": "item", "rating": "stars", "timestamp": "ts", "summary": "title",
        "text": "body"}}, "items": {"path": "items.jsonl", "columns": {"item_id": "id", "title": "name"}}})
    outcomes = {}
    for engine in ENGINES:
        result = ingest("shop", raw, params, engine)
        kept = {ref: "kept" for ref in result.interactions["row_ref"].to_pylist()}
        quarantined = {row["row_ref"]: row for row in result.quarantine.to_pylist()}
        outcomes[engine] = kept | quarantined
    return outcomes


def line_refs(step: str) -> tuple[list[str], list[str]]:
    """The row_refs of a case's (failing, passing) rows: their lines in ratings.jsonl."""
    line = 1
    for name, (failing, passing) in CASES.items():
        if name == step:
            return ([f"ratings.jsonl:{line + n}" for n in range(len(failing))],
                    [f"ratings.jsonl:{line + len(failing) + n}" for n in range(len(passing))])
        line += len(failing) + len(passing)
    raise KeyError(step)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("rule", TABLE, ids=lambda rule: rule.step)
def test_each_rule_quarantines_its_case_in_both_engines(engines, engine: str, rule: Rule):
    failing, passing = line_refs(rule.step)
    outcome = engines[engine]
    for ref in failing:
        row = outcome[ref]
        assert (row["source"], row["field"], row["reason"].split(":")[0]) == (
            f"interactions/{rule.step}", rule.field, rule.reason), ref
    assert [outcome[ref] for ref in passing] == ["kept"] * len(passing)
