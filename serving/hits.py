"""A search result as both the reader and the conversation layer return it (a leaf module: no cycle)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Hit:
    item_id: str
    score: float
    title: str
    creator: str | None
    categories: list[str] | None
    year: int | None
    price: float | None
    url: str | None
    attributes: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hits_from(metadata: pa.Table, scores: np.ndarray) -> list[Hit]:
    rows = metadata.to_pylist()
    return [Hit(score=float(score), **{**row, "attributes": json.loads(row["attributes"] or "{}")})
            for row, score in zip(rows, scores)]
