"""Seeded, order-independent train/test assignment by group key.

A row goes to test when the hash of (seed, its group key) falls below the test fraction, so every
row sharing a key (the same review text, the same query) lands on the same side, and the split
neither depends on row order nor moves when unrelated rows are added.
"""

from __future__ import annotations

import hashlib


def unit_hash(key: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, key)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_test(key: str, seed: int, test_fraction: float) -> bool:
    return unit_hash(key, seed) < test_fraction


def normalise(text: str) -> str:
    """The form two texts are compared in for leakage: case- and whitespace-insensitive."""
    return " ".join(text.lower().split())
