"""Batched language identification: py3langid's model and scores, computed for many texts at once.

`py3langid.classify` walks its byte DFA in a Python loop and scores one text at a time (~250 us a
review here). This walks the DFA for a whole batch with NumPy (one step per byte position, all texts
in step), counts the features into one sparse matrix and scores them with one sparse x dense
product. Same model, same text encoding, same scores up to float summation order:
tests/test_ingest_langid.py checks the labels against `py3langid.classify` on real reviews.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import cache

import numpy as np
from py3langid.langid import MODEL_FILE, RAW_FLOOR, LanguageIdentifier
from scipy import sparse

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


@cache
def identifier() -> BatchIdentifier:
    """The bundled py3langid model (shipped inside the wheel), loaded once per process."""
    return BatchIdentifier(LanguageIdentifier.from_model_file(MODEL_FILE))


def classify(texts: Sequence[str]) -> list[str]:
    return identifier().classify(texts)
