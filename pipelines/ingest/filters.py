"""The ingest filter rules, one definition for both engines (Polars and Beam).

Interactions pass the steps in STEPS order; a row rejected by a step carries that step and a reason
into quarantine. Row rules (rating, tokens, item, language) look at one row; language runs after the
cheap row rules, so only rows that passed them are classified. Set rules (duplicate, user_positives)
run last, on the rows every row rule kept, so "earliest" means the earliest *valid* positive.

Rows with no text (zero tokens, e.g. MovieLens ratings) skip the tokens and language rules; rows with
no user (e.g. the fashion reviews) skip the duplicate and user_positives rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipelines.catalogs.source import ORDER
from pipelines.common.schemas import INTERACTIONS
from pipelines.ingest import langid

# Steps in order, each with the INTERACTIONS field it judges (the quarantine `field`).
STEPS: dict[str, str] = {
    "rating": "rating",
    "tokens": "text",
    "item": "item_id",
    "language": "text",
    "duplicate": "item_id",
    "user_positives": "user_id",
}
REASONS = {
    "rating": "rating_below_min",
    "tokens": "too_few_tokens",
    "item": "unknown_item",
    "duplicate": "duplicate_user_item",
    "user_positives": "too_few_user_positives",
}
WRONG_LANGUAGE = "wrong_language: "  # + the detected language code

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
    """The first cheap row rule `row` fails (a STEPS key), or None."""
    if row["rating"] < rules.min_rating:
        return "rating"
    tokens = token_count(row["summary"], row["text"])
    if 0 < tokens < rules.min_tokens:
        return "tokens"
    if not known_item:
        return "item"
    return None


def languages(texts: Sequence[str | None]) -> list[str | None]:
    """Detected language per text (CLD2); None where the text is None."""
    present = [i for i, text in enumerate(texts) if text is not None]
    detected: list[str | None] = [None] * len(texts)
    for i, code in zip(present, langid.classify([texts[i] for i in present])):
        detected[i] = code
    return detected


def language_reason(detected: str | None, rules: Rules) -> str | None:
    """Quarantine reason for a row whose text was detected as `detected`, or None to keep it."""
    if detected is None or detected == rules.language:
        return None
    return WRONG_LANGUAGE + detected


def earliest_first(row: Mapping[str, Any]) -> tuple[bool, int, int]:
    """Sort key of the duplicate rule: earliest timestamp first, unknown timestamps last, then file order."""
    return (row["timestamp"] is None, row["timestamp"] or 0, row[ORDER])
