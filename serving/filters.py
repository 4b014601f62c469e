"""Hard attribute filters over the metadata shards: creator, categories, year range, price range.

A filter becomes a boolean row mask per metadata shard, which the search turns into an allow-list,
so filtering happens inside the search rather than after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


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
                values[name] = _typed(name, value, str)
            elif name == "categories":
                items = [value] if isinstance(value, str) else value
                if not isinstance(items, (list, tuple)) or not items:
                    raise FilterError("filter 'categories' must be a non-empty list of strings")
                values[name] = tuple(_typed(name, item, str) for item in items)
            elif name.startswith("year"):
                values[name] = _typed(name, value, int)
            else:
                values[name] = float(_typed(name, value, (int, float)))
        for low, high in (("year_min", "year_max"), ("price_min", "price_max")):
            if values.get(low) is not None and values.get(high) is not None and values[low] > values[high]:
                raise FilterError(f"filter {low}={values[low]} is above {high}={values[high]}")
        return cls(**values)

    def __bool__(self) -> bool:
        return self != Filters()

    def mask(self, table: pa.Table) -> np.ndarray:
        """Boolean mask of the rows of a metadata table (columns creator, categories, year, price)."""
        keep = np.ones(table.num_rows, dtype=bool)
        if self.creator is not None:
            keep &= _true(pc.equal(table["creator"], self.creator))
        if self.categories:
            keep &= np.concatenate([self._any_category(chunk) for chunk in table["categories"].chunks]
                                   or [np.zeros(0, dtype=bool)])
        for column, low, high in (("year", self.year_min, self.year_max), ("price", self.price_min, self.price_max)):
            if low is not None:
                keep &= _true(pc.greater_equal(table[column], low))
            if high is not None:
                keep &= _true(pc.less_equal(table[column], high))
        return keep

    def _any_category(self, lists: pa.ListArray) -> np.ndarray:
        values = pc.list_flatten(lists)
        hit = np.zeros(len(values), dtype=bool)
        for category in self.categories:  # equal per category: much faster than is_in on strings
            hit |= _true(pc.equal(values, category))
        rows = np.zeros(len(lists), dtype=bool)
        rows[pc.list_parent_indices(lists).to_numpy()[hit]] = True
        return rows


def _true(condition: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow result as numpy, null (a missing value) counting as False."""
    return pc.fill_null(condition, False).to_numpy(zero_copy_only=False)


def _typed(name: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise FilterError(f"filter {name!r}: {value!r} is not {getattr(kind, '__name__', 'a number')}")
    return value
