"""Bounds on one request, shared by the HTTP API and the CLI: what a client may ask the reader for.

`check_k` and `check_text` raise LimitError naming the field; the CLI turns it into a usage error (exit 2)
and HTTP into a 400. Types are strict: a boolean is not a k.
"""

from __future__ import annotations

MAX_K = 100  # results per request
MAX_TEXT_CHARS = 2000  # query or conversational request text


class LimitError(ValueError):
    """A request value is of the wrong type or outside its bounds."""


def check_k(k: object, name: str = "k") -> int:
    if type(k) is not int or not 1 <= k <= MAX_K:
        raise LimitError(f"{name} must be an integer from 1 to {MAX_K}, not {k!r}")
    return k


def check_text(text: object, name: str = "text") -> str:
    """1 to MAX_TEXT_CHARS characters, not all blank, and valid Unicode: a shell passes a byte that is not
    UTF-8 as a lone surrogate, which the tokenizer cannot take."""
    if not isinstance(text, str):
        raise LimitError(f"{name} must be a string, not {type(text).__name__}")
    if not text.strip() or len(text) > MAX_TEXT_CHARS:
        raise LimitError(f"{name} must be 1 to {MAX_TEXT_CHARS} characters, not all blank ({len(text)} given)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise LimitError(f"{name} is not valid UTF-8 (character {err.start}: {text[err.start]!r})") from None
    return text
