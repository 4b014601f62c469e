"""Language identification: CLD2 (pycld2, the model compiled into the wheel), one C call per text.

Chosen by bench/langid.py on the bundled real reviews, against batched py3langid and fastText lid.176:
the fastest, and in agreement with py3langid on nearly every review (bench/results/langid.md). A text
CLD2 cannot place (emoji only, too short, no letters) is "un" (unknown). Only the first PREFIX characters
are read: faster, and the same label on every bundled review (bench/results/langid.md).
The engines call `classify` inside their worker processes, never in one driver thread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pycld2

PREFIX = 200  # characters of a text that CLD2 reads
LANGUAGES = frozenset(code for _, code in pycld2.LANGUAGES) | {"un"}
# Control characters CLD2 refuses as "invalid UTF-8" (all but tab, newline and carriage return).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def detect(text: str) -> str:
    """CLD2's language code for `text` (lone surrogates replaced, so any str is accepted)."""
    data = text.encode("utf-8", "replace")
    try:
        return pycld2.detect(data, isPlainText=True)[2][0][1]
    except pycld2.error:
        return pycld2.detect(_CONTROL.sub(" ", text).encode("utf-8", "replace"), isPlainText=True)[2][0][1]


def classify(texts: Sequence[str]) -> list[str]:
    """The language code of each text's first PREFIX characters."""
    return [detect(text[:PREFIX]) for text in texts]
