"""Hard attribute filters over the metadata shards: creator, categories, year range, price range.

A filter becomes a boolean row mask per metadata shard, which the search turns into an allow-list,
so filtering happens inside the search rather than after it. Values are bounded (the limits below):
each category costs a pass over the shard (~0.5 ms per 1M items), and a number must be finite and
within range, so no request can buy unbounded CPU or an overflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_CATEGORIES = 64
MAX_TEXT_CHARS = 200  # creator, each category
YEAR_RANGE = (0, 9999)
PRICE_RANGE = (0.0, 1e12)


class FilterError(ValueError):
    """A filter names an unknown field or has a value of the wrong type."""


@dataclass(frozen=True)
class Filters:
    creator: str | None = None  # exact match (director, brand, store)
    categories: tuple[str, ...] = ()  # the item has at least one of these
    year_min: int | None = None  # inclusive bounds; an item without a year fails any year bound
    year_max: int | None = None
    price_min: float | None = None
    price_max: float | None = None

    @classmethod
    def parse(cls, raw: Filters | Mapping[str, Any] | None) -> Filters:
        """Build from a JSON-like mapping; unknown fields and bad values raise FilterError naming them."""
        if isinstance(raw, Filters):
            return raw
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise FilterError(f"unknown filter field(s) {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if value is None:
                continue
            if name == "creator":
                values[name] = _text(name, value)
            elif name == "categories":
                items = [value] if isinstance(value, str) else value
                if not isinstance(items, (list, tuple)) or not 1 <= len(items) <= MAX_CATEGORIES:
                    raise FilterError(f"filter 'categories' must be a list of 1 to {MAX_CATEGORIES} strings")
                values[name] = tuple(_text(name, item) for item in items)
            elif name.startswith("year"):
                values[name] = _bounded(name, _typed(name, value, int), YEAR_RANGE)
            else:
                values[name] = float(_bounded(name, _typed(name, value, (int, float)), PRICE_RANGE))
        for low, high in (("year_min", "year_max"), ("price_min", "price_max")):
            if values.get(low) is not None and values.get(high) is not None and values[low] > values[high]:
                raise FilterError(f"filter {low}={values[low]} is above {high}={values[high]}")
        return cls(**values)

    def __bool__(self) -> bool:
        return self != Filters()

    def mask(self, columns: FilterColumns) -> np.ndarray:
        """Boolean mask of the rows of one metadata shard that pass every filter."""
        keep = np.ones(columns.rows, dtype=bool)
        if self.creator is not None:
            keep &= columns.creator_codes == columns.creators.get(self.creator, -2)  # -2 matches no row
        if self.categories:
            hit = np.zeros(len(columns.category_codes), dtype=bool)
            for category in self.categories:  # a few == beat np.isin here by ~10x
                hit |= columns.category_codes == columns.categories.get(category, -2)
            rows = np.zeros(columns.rows, dtype=bool)
            rows[columns.category_rows[hit]] = True
            keep &= rows
        with np.errstate(invalid="ignore"):  # NaN (no value) fails every bound
            for values, low, high in ((columns.year, self.year_min, self.year_max),
                                      (columns.price, self.price_min, self.price_max)):
                if low is not None:
                    keep &= values >= low
                if high is not None:
                    keep &= values <= high
        return keep


@dataclass(frozen=True)
class FilterColumns:
    """One metadata shard's filterable columns as numpy arrays (built once), so a filter costs a few
    vectorised comparisons instead of string compares over Arrow columns on every query."""

    rows: int
    creator_codes: np.ndarray  # int32 code per row, -1 where null
    creators: dict[str, int]  # creator -> code
    category_codes: np.ndarray  # int32 code per (row, category) entry, lists flattened
    category_rows: np.ndarray  # the row of each flattened entry
    categories: dict[str, int]
    year: np.ndarray  # float64, NaN where null
    price: np.ndarray

    @classmethod
    def of(cls, table: pa.Table) -> FilterColumns:
        creator_codes, creators = _codes(table["creator"].combine_chunks())
        lists = table["categories"].combine_chunks()
        category_codes, categories = _codes(pc.list_flatten(lists))
        return cls(rows=table.num_rows, creator_codes=creator_codes, creators=creators,
                   category_codes=category_codes, category_rows=pc.list_parent_indices(lists).to_numpy(),
                   categories=categories, year=_floats(table["year"]), price=_floats(table["price"]))


def _codes(strings: pa.Array) -> tuple[np.ndarray, dict[str, int]]:
    encoded = pc.dictionary_encode(strings)
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)
    return codes, {value: code for code, value in enumerate(encoded.dictionary.to_pylist())}


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN


def _text(name: str, value: Any) -> str:
    if len(_typed(name, value, str)) > MAX_TEXT_CHARS:
        raise FilterError(f"filter {name!r}: longer than {MAX_TEXT_CHARS} characters")
    return value


def _bounded(name: str, value: float, bounds: tuple[float, float]) -> float:
    """`value` if finite and within `bounds`; compared as Python numbers, so 10**400 cannot overflow."""
    if (isinstance(value, float) and not math.isfinite(value)) or not bounds[0] <= value <= bounds[1]:
        raise FilterError(f"filter {name!r}: {value!r:.40} is not a finite number in [{bounds[0]}, {bounds[1]}]")
    return value


def _typed(name: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise FilterError(f"filter {name!r}: {value!r} is not {getattr(kind, '__name__', 'a number')}")
    return value
