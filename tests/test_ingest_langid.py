"""Language identification (CLD2) on real reviews and on the texts that trip it up."""

from __future__ import annotations

import pyarrow.parquet as pq
from ingest_slices import RAW

from pipelines.ingest import langid


def test_real_reviews_are_english_and_other_languages_are_named():
    reviews = pq.read_table(RAW / "womens_clothing_reviews.parquet", columns=["Review Text"]).slice(0, 300)
    texts = [t for t in reviews.column("Review Text").to_pylist() if t and len(t.split()) >= 5]
    assert sum(code == "en" for code in langid.classify(texts)) >= 0.99 * len(texts)
    assert langid.classify(["Cette robe est très jolie et confortable, je la recommande.",
                            "Das Kleid ist wunderschön und passt perfekt zu meinen Schuhen.",
                            "La camisa es muy bonita pero las mangas son un poco largas."]) == ["fr", "de", "es"]


def test_any_str_gets_a_code_control_characters_and_lone_surrogates_included():
    odd = ["", "🙂🙂🙂", "\x00\x01 control \x7f\x85 characters in a sentence about a dress",
           "a lone surrogate \ud800 inside an English sentence about shoes", "x" * 100_000]
    codes = langid.classify(odd)
    assert codes[0] == codes[1] == "un" and codes[2] == codes[3] == "en"
    assert set(codes) <= langid.LANGUAGES and langid.classify([]) == []
