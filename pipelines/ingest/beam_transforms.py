"""Beam transforms of the ingest rules (the table in pipelines/ingest/filters.py), on Python values.

Rows are dicts (INTERACTIONS plus ORDER). Every rule has a main output (rows kept) and a REJECTED
output (the row plus `_step` and `_reason`); `FilterInteractions` chains them in TABLE order (the item
rule a CoGroupByKey with the kept item ids) and flattens the rejected rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from pipelines.ingest.filters import (
    ORDER,
    REASONS,
    RULE,
    Rules,
    earliest_first,
    language_reason,
    language_text,
    languages,
    row_rejection,
    token_count,
)

Row = dict[str, Any]
REJECTED = "rejected"


def rejected(row: Row, step: str, reason: str | None = None) -> pvalue.TaggedOutput:
    return pvalue.TaggedOutput(REJECTED, {**row, "_step": step, "_reason": reason or REASONS[step]})


class RowRules(beam.DoFn):
    """The rating and tokens rules (the item rule is a join: `known_item`)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def process(self, row: Row) -> Iterator[Any]:
        step = row_rejection(row, self.rules, known_item=True)
        yield row if step is None else rejected(row, step)


def known_item(joined: tuple[str, dict[str, Iterable[Any]]]) -> Iterator[Any]:
    """One item id's rows after CoGroupByKey with the kept item ids: kept if the id is one of them."""
    _, sides = joined
    unknown = RULE["item"].fails(any(True for _ in sides["items"]))
    for row in sides["rows"]:
        yield rejected(row, "item") if unknown else row


class LanguageRule(beam.DoFn):
    """The language rule on a batch of rows (see beam.BatchElements); rows with no text pass."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def process(self, batch: list[Row]) -> Iterator[Any]:
        texts = [language_text(r["summary"], r["text"]) if token_count(r["summary"], r["text"]) else None
                 for r in batch]
        for row, detected in zip(batch, languages(texts)):
            reason = language_reason(detected, self.rules)
            yield row if reason is None else rejected(row, "language", reason)


def keep_earliest(group: tuple[Any, Iterable[Row]]) -> Iterator[Any]:
    """Of one (user, item) group, keep the earliest row and reject the others."""
    for rank, row in enumerate(sorted(group[1], key=earliest_first)):
        yield rejected(row, "duplicate") if RULE["duplicate"].fails(rank == 0) else row


def min_positives(rules: Rules) -> Any:
    def keep_users(group: tuple[Any, Iterable[Row]]) -> Iterator[Any]:
        """A user's rows, rejected if the user has too few of them (rows with no user always pass)."""
        (user, _), rows = group
        rows = list(rows)
        few = user is not None and RULE["user_positives"].fails(len(rows), rules)
        for row in rows:
            yield rejected(row, "user_positives") if few else row
    return keep_users


def user_key(*columns: str) -> Any:
    """Group key (user, columns...); rows with no user get a key of their own, so they group alone."""
    def key(row: Row) -> tuple[Any, Row]:
        if row["user_id"] is None:
            return (None, row[ORDER]), row
        return (row["user_id"], tuple(row[c] for c in columns)), row
    return key


class FilterInteractions(beam.PTransform):
    """All ingest rules in TABLE order -> (kept rows, rejected rows)."""

    def __init__(self, rules: Rules, item_ids: beam.PCollection) -> None:
        super().__init__()
        self.rules = rules
        self.item_ids = item_ids

    def expand(self, rows: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        row_rules = rows | "row rules" >> beam.ParDo(RowRules(self.rules)).with_outputs(REJECTED, main="kept")
        item = ({"rows": row_rules.kept | "key item" >> beam.Map(lambda r: (r["item_id"], r)),
                 "items": self.item_ids | "key item id" >> beam.Map(lambda i: (i, None))}
                | "join items" >> beam.CoGroupByKey()
                | "item rule" >> beam.FlatMap(known_item).with_outputs(REJECTED, main="kept"))
        language = (item.kept
                    | "batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=8192)
                    | "language" >> beam.ParDo(LanguageRule(self.rules)).with_outputs(REJECTED, main="kept"))
        duplicate = (language.kept
                     | "key (user, item)" >> beam.Map(user_key("item_id"))
                     | "group (user, item)" >> beam.GroupByKey()
                     | "keep earliest" >> beam.FlatMap(keep_earliest).with_outputs(REJECTED, main="kept"))
        positives = (duplicate.kept
                     | "key user" >> beam.Map(user_key())
                     | "group user" >> beam.GroupByKey()
                     | "min positives" >> beam.FlatMap(min_positives(self.rules))
                     .with_outputs(REJECTED, main="kept"))
        steps = (row_rules, item, language, duplicate, positives)
        rejected_rows = tuple(s[REJECTED] for s in steps) | "all rejected" >> beam.Flatten()
        return positives.kept, rejected_rows
