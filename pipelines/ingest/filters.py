"""The ingest rules, defined once in TABLE for both engines (Polars and Beam).

Interactions meet the rules in TABLE order; a row a rule rejects carries the rule's step, field and reason
into quarantine. A rule compares a measure of the row (its rating, its token count, ...: each engine takes
it its own way) with its threshold (a `Rules` param) by its `Kind`, a comparison spelled for Python values
(the Beam engine) and for Polars expressions (the Polars engine) side by side, once where one spelling
serves both.

Row rules (rating, tokens, item, language) look at one row; language runs after the cheap row rules
(CHEAP_STEPS), so only rows that passed them are classified. Set rules (duplicate, user_positives) run
last, on the rows every row rule kept, so "earliest" means the earliest *valid* positive.

Rows with no text (zero tokens, e.g. MovieLens ratings) skip the tokens and language rules; rows with
no user (e.g. the fashion reviews) skip the duplicate and user_positives rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipelines.catalogs.source import ORDER
from pipelines.common.schemas import INTERACTIONS
from pipelines.ingest import langid

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Kind:
    """How a rule fails a row, from the row's measure and the rule's threshold."""

    python: Callable[[Any, Any], bool]
    polars: Callable[[pl.Expr, Any], pl.Expr]


def _below(measure: Any, threshold: Any) -> Any:
    return measure < threshold  # one spelling: `<` means the same on numbers and on Polars expressions


def _below_if_any(measure: Any, threshold: Any) -> Any:
    return (measure > 0) & (measure < threshold)  # zero: nothing to judge (a row with no text)


def _false(measure: bool, _: Any) -> bool:
    return not measure


def _false_expr(measure: pl.Expr, _: Any) -> pl.Expr:
    return ~measure


def _other_than(measure: str | None, expected: str) -> bool:
    return measure is not None and measure != expected


def _other_than_expr(measure: pl.Expr, expected: str) -> pl.Expr:
    return measure.is_not_null() & (measure != expected)


BELOW = Kind(_below, _below)
BELOW_IF_ANY = Kind(_below_if_any, _below_if_any)
FALSE = Kind(_false, _false_expr)
OTHER_THAN = Kind(_other_than, _other_than_expr)


@dataclass(frozen=True)
class Rule:
    """A row of TABLE."""

    step: str  # quarantine source "interactions/<step>"
    field: str  # the INTERACTIONS field it judges (quarantine `field`)
    kind: Kind
    param: str | None  # the `Rules` attribute that is its threshold
    reason: str  # quarantine reason code

    def threshold(self, rules: Rules | None) -> Any:
        return getattr(rules, self.param) if self.param else None

    def fails(self, measure: Any, rules: Rules | None = None) -> bool:
        """On one row's measure (the Beam engine)."""
        return self.kind.python(measure, self.threshold(rules))

    def fails_expr(self, measure: pl.Expr, rules: Rules | None = None) -> pl.Expr:
        """On a column of measures (the Polars engine)."""
        return self.kind.polars(measure, self.threshold(rules))


# A row fails a rule when its `kind` holds of (the row's measure, the rule's `param` of Rules). The measures:
# rating: the rating; tokens: token_count; item: "the item id is a kept item's"; language: the code languages()
# gives language_text; duplicate: "the earliest (earliest_first) of its user's rows of the item"; user_positives:
# the user's rows left.
TABLE: tuple[Rule, ...] = (
    #    step              field      kind          param                 reason
    Rule("rating",         "rating",  BELOW,        "min_rating",         "rating_below_min"),
    Rule("tokens",         "text",    BELOW_IF_ANY, "min_tokens",         "too_few_tokens"),
    Rule("item",           "item_id", FALSE,        None,                 "unknown_item"),
    Rule("language",       "text",    OTHER_THAN,   "language",           "wrong_language"),
    Rule("duplicate",      "item_id", FALSE,        None,                 "duplicate_user_item"),
    Rule("user_positives", "user_id", BELOW,        "min_user_positives", "too_few_user_positives"),
)
RULE = {rule.step: rule for rule in TABLE}
STEPS = {rule.step: rule.field for rule in TABLE}
REASONS = {rule.step: rule.reason for rule in TABLE}
CHEAP_STEPS = ("rating", "tokens", "item")  # the row rules before language
WRONG_LANGUAGE = f"{RULE['language'].reason}: "  # + the detected language code

# What an engine returns for the rows it rejects: the row, the step that rejected it and why.
REJECTED = pa.schema([*INTERACTIONS, pa.field("_step", pa.string(), nullable=False),
                      pa.field("_reason", pa.string(), nullable=False)])

# A token is a run of characters other than ASCII whitespace: the class is spelled out so that
# Python's `re` and Polars' Rust regex agree on every input (their `\s` and `\w` differ).
TOKEN_PATTERN = r"[^ \t\n\r\f\v]+"
_TOKEN = re.compile(TOKEN_PATTERN)


@dataclass(frozen=True)
class Rules:
    min_rating: float
    min_tokens: int
    language: str
    min_user_positives: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Rules:
        """Validate `ingest.filters` from params.yaml, naming the offending key."""
        expected = {"min_rating": (int, float), "min_tokens": int, "language": str, "min_user_positives": int}
        unknown = set(params) - set(expected)
        if unknown:
            raise ValueError(f"ingest.filters: unknown key(s) {sorted(unknown)}; expected {sorted(expected)}")
        for key, kind in expected.items():
            value = params.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"ingest.filters.{key}: expected {kind}, got {value!r}")
        if params["language"] not in langid.LANGUAGES:
            raise ValueError(f"ingest.filters.language: {params['language']!r} is not a CLD2 language code")
        return cls(float(params["min_rating"]), params["min_tokens"], params["language"],
                   params["min_user_positives"])


def token_count(summary: str | None, text: str | None) -> int:
    return sum(len(_TOKEN.findall(part)) for part in (summary, text) if part is not None)


def language_text(summary: str | None, text: str | None) -> str:
    """What the language rule reads: summary and text joined by a space."""
    return " ".join(part for part in (summary, text) if part is not None)


def row_rejection(row: Mapping[str, Any], rules: Rules, known_item: bool) -> str | None:
    """The first cheap row rule (CHEAP_STEPS) `row` fails, or None."""
    measures = {"rating": row["rating"], "tokens": token_count(row["summary"], row["text"]), "item": known_item}
    return next((step for step in CHEAP_STEPS if RULE[step].fails(measures[step], rules)), None)


def languages(texts: Sequence[str | None]) -> list[str | None]:
    """Detected language per text (CLD2); None where the text is None."""
    present = [i for i, text in enumerate(texts) if text is not None]
    detected: list[str | None] = [None] * len(texts)
    for i, code in zip(present, langid.classify([texts[i] for i in present])):
        detected[i] = code
    return detected


def language_reason(detected: str | None, rules: Rules) -> str | None:
    """Quarantine reason for a row whose text was detected as `detected` (None: no text), or None to keep it."""
    return f"{WRONG_LANGUAGE}{detected}" if RULE["language"].fails(detected, rules) else None


def earliest_first(row: Mapping[str, Any]) -> tuple[bool, int, int]:
    """Sort key of the duplicate rule: earliest timestamp first, unknown timestamps last, then file order."""
    return (row["timestamp"] is None, row["timestamp"] or 0, row[ORDER])
