"""Seeded, order-independent train/validation/test assignment by group key.

A row goes to test when the hash of (seed, its group key) falls below the test fraction, to
validation when it falls in the next `validation_fraction`, else to train. Every row sharing a key
(the same review text, the same query) lands on the same side, and the split neither depends on row
order nor moves when unrelated rows are added (nor does test move when validation is carved out).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

Side = Literal["train", "validation", "test"]


def unit_hash(key: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, key)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def check_fractions(section: str, test_fraction: float, validation_fraction: float) -> None:
    """Refuse fractions `side` cannot honour: an empty test side, or no room left for train."""
    if not (0 < test_fraction and 0 <= validation_fraction and test_fraction + validation_fraction < 1):
        raise ValueError(f"{section}: need test_fraction > 0, validation_fraction >= 0 and their sum < 1, not "
                         f"{test_fraction} and {validation_fraction}")


def side(key: str, seed: int, test_fraction: float, validation_fraction: float = 0.0) -> Side:
    u = unit_hash(key, seed)
    return "test" if u < test_fraction else "validation" if u < test_fraction + validation_fraction else "train"


def normalise(text: str) -> str:
    """The form two texts are compared in for leakage: case- and whitespace-insensitive."""
    return " ".join(text.lower().split())


CLOZE_KINDS = frozenset({"ict"})  # pair kinds whose query is a sentence cut out of its own item's document


def unquoted(document: str, texts: Iterable[str]) -> str:
    """`document` without any of `texts` it quotes verbatim: a query must not be a substring of its own
    positive (an inverse-cloze sentence found in its movie's summary teaches string matching, not intent)."""
    for text in texts:
        if text and text in document:
            document = document.replace(text, "").replace("  ", " ")
    return document
