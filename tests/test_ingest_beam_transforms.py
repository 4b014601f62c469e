"""The Beam transforms of the ingest rules, alone and chained (FnApiRunner)."""

from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to
from ingest_slices import FILTERS

from pipelines.ingest.beam_transforms import (
    REJECTED,
    FilterInteractions,
    LanguageRule,
    RowRules,
    keep_earliest,
    known_item,
    min_positives,
    user_key,
)
from pipelines.ingest.filters import ORDER, Rules

RULES = Rules.from_params(FILTERS)
ENGLISH = "The fabric is soft and the fit is true to size."
FRENCH = "Le tissu est doux et la coupe est parfaite pour moi."


def row(order: int, user: str | None = "u", item: str = "i", rating: float = 5.0, timestamp: int | None = 1,
        text: str | None = None) -> dict:
    return {"row_ref": f"f:{order}", "user_id": user, "item_id": item, "rating": rating, "timestamp": timestamp,
            "summary": None, "text": text, ORDER: order}


def outcome(outputs) -> list[tuple[str, str | None]]:
    """(row_ref, rejecting step or None) per output of a DoFn / FlatMap function."""
    return [(o.value["row_ref"], o.value["_step"]) if isinstance(o, pvalue.TaggedOutput) else (o["row_ref"], None)
            for o in outputs]


def test_row_rules_tag_the_first_failing_rule():
    rules = RowRules(RULES)
    rows = [row(1, rating=2.0), row(2, text="too short"), row(3, item="gone"), row(4, text=ENGLISH)]
    assert outcome(o for r in rows for o in rules.process(r)) == [
        ("f:1", "rating"), ("f:2", "tokens"), ("f:3", None), ("f:4", None)]


def test_item_rule_keeps_rows_of_a_joined_item_id():
    assert outcome(known_item(("i", {"rows": [row(1), row(2)], "items": [None]}))) == [("f:1", None), ("f:2", None)]
    assert outcome(known_item(("gone", {"rows": [row(3, item="gone")], "items": []}))) == [("f:3", "item")]


def test_language_rule_runs_on_a_batch_and_passes_rows_without_text():
    batch = [row(1, text=ENGLISH), row(2, text=FRENCH), row(3)]
    assert outcome(LanguageRule(RULES).process(batch)) == [("f:1", None), ("f:2", "language"), ("f:3", None)]


def test_keep_earliest_and_min_positives_on_one_group():
    group = user_key("item_id")(row(0))[0], [row(7, timestamp=5), row(3, timestamp=None), row(9, timestamp=5)]
    assert sorted(outcome(keep_earliest(group))) == [("f:3", "duplicate"), ("f:7", None), ("f:9", "duplicate")]
    assert RULES.min_user_positives == 3
    assert outcome(min_positives(RULES)((("u", ()), [row(1), row(2)]))) == [("f:1", "user_positives"),
                                                                           ("f:2", "user_positives")]
    assert outcome(min_positives(RULES)((("u", ()), [row(1), row(2), row(3)]))) == [("f:1", None), ("f:2", None),
                                                                                   ("f:3", None)]
    assert outcome(min_positives(RULES)(((None, 4), [row(4, user=None)]))) == [("f:4", None)]


def test_filter_interactions_chains_every_rule():
    rows = [row(0, user="a", text=ENGLISH), row(1, user="a", item="j", text=ENGLISH),
            row(2, user="a", item="k", timestamp=0), row(3, user="a", timestamp=0),  # earlier duplicate of 0
            row(4, user="b", text=ENGLISH), row(5, user="b", item="j", text=FRENCH),
            row(6, user="b", item="k"), row(7, user=None, item="gone"), row(8, user=None, rating=1.0)]
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        items = pipeline | "items" >> beam.Create(["i", "j", "k"])
        kept, rejected = pipeline | beam.Create(rows) | FilterInteractions(RULES, items)
        assert_that(kept | "kept refs" >> beam.Map(lambda r: r["row_ref"]), equal_to(["f:1", "f:2", "f:3"]),
                    label="kept")
        assert_that(rejected | "rejected" >> beam.Map(lambda r: (r["row_ref"], r["_step"])), equal_to([
            ("f:0", "duplicate"), ("f:4", "user_positives"), ("f:5", "language"), ("f:6", "user_positives"),
            ("f:7", "item"), ("f:8", "rating")]), label=REJECTED)
