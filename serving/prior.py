"""A popularity prior: how often each item was liked, as one score in [0, 1] per snapshot global row.

A recommender's users mostly want what many others liked: on fashion's held-out reviews the most-liked
items alone rank the reviewed item better than BM25 does. `Fusion.prior_weight` blends this score into the
fused one (serving.fusion). The counts are the pairs stage's positives outside every held-out query, so a
test review never counts toward its own item. Saved as one .npy (no pickle), memory-mapped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PRIOR_FILE = "positives.npy"  # int64 positives per global row


def prior_scores(positives: np.ndarray) -> np.ndarray:
    """log(1 + positives) / log(1 + max positives): a liked item's pull grows slowly with its count; all
    zeros when nothing was liked."""
    logs = np.log1p(np.asarray(positives, dtype=np.float64))
    top = logs.max(initial=0.0)
    return logs / top if top > 0 else logs


def save_positives(positives: np.ndarray, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / PRIOR_FILE, np.asarray(positives, dtype=np.int64), allow_pickle=False)


def load_positives(folder: str | Path) -> np.ndarray:
    return np.load(Path(folder) / PRIOR_FILE, mmap_mode="r", allow_pickle=False)
