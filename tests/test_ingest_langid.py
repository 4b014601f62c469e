"""Batched language identification gives exactly py3langid's own labels."""

from __future__ import annotations

import py3langid
import pyarrow.parquet as pq
from ingest_slices import RAW

from pipelines.ingest import langid


def test_batched_labels_equal_py3langid_on_real_reviews_and_edge_cases():
    reviews = pq.read_table(RAW / "womens_clothing_reviews.parquet", columns=["Title", "Review Text"]).slice(0, 300)
    texts = [t for column in reviews.columns for t in column.to_pylist() if t]
    texts += ["", "   ", "ok", "ALL CAPS SHOUTING ABOUT THIS DRESS", "Cette robe est très jolie et confortable.",
              "Das Kleid ist wunderschön und passt perfekt.", "このドレスはとても素敵です", "🙂🙂🙂",
              "a long one " * 400, "e\u0301 combining accents normalised"]
    assert langid.classify(texts) == [py3langid.classify(t)[0] for t in texts]
    assert langid.classify([]) == []
