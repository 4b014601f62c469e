"""What a conversational request asks for: an intent and the entities it names, as strict JSON.

    {"intent":"recommend","titles":["Heat"],"genres":[],"people":[],"themes":[]}

The intent model writes the sparse form (`{"intent":"recommend","titles":["Heat"]}`: a missing
list is empty). `parse` turns a model's raw output into an `Extraction` that always holds:
malformed JSON is repaired (closed, or read field by field), wrong types are dropped, and when
nothing can be read the request falls back to `recommend` with no entities, which plain semantic
retrieval can still answer. It reports whether it had to repair, so the repairs can be counted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

Intent = Literal["recommend", "trivia", "chitchat", "help"]
INTENTS: tuple[Intent, ...] = get_args(Intent)
FIELDS = ("titles", "genres", "people", "themes")
FALLBACK_INTENT: Intent = "recommend"

_CLOSINGS = ("", "}", "]}", '"]}', '"}')


@dataclass(frozen=True)
class Extraction:
    intent: Intent
    titles: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.intent not in INTENTS:
            raise ValueError(f"intent {self.intent!r} is not one of {INTENTS}")

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, **{f: list(getattr(self, f)) for f in FIELDS}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    def to_sparse_json(self) -> str:
        """What the intent model writes: the empty lists left out (half the tokens to decode)."""
        return json.dumps({k: v for k, v in self.to_dict().items() if v}, ensure_ascii=False, separators=(",", ":"))


def _load_object(text: str) -> dict | None:
    """The first JSON object in `text`, closing it if the output stopped early."""
    start = text.find("{")
    if start < 0:
        return None
    body = text[start:]
    end = body.rfind("}")
    candidates = [body[: end + 1]] if end >= 0 else []
    candidates += [body.rstrip(", ") + closing for closing in _CLOSINGS]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _read_fields(text: str) -> dict:
    """Last resort: pick `"intent": "..."` and `"field": [...]` out of unparseable text."""
    found: dict = {}
    intent = re.search(r'"intent"\s*:\s*"(\w+)"', text)
    if intent:
        found["intent"] = intent.group(1)
    for name in FIELDS:
        items = re.search(rf'"{name}"\s*:\s*\[([^\]]*)', text)
        if items:
            found[name] = re.findall(r'"((?:[^"\\]|\\.)*)"', items.group(1))
    return found


def parse(text: str) -> tuple[Extraction, bool]:
    """(extraction, repaired): repaired is True when the output was not already a valid extraction."""
    value = _load_object(text)
    repaired = False
    try:
        repaired = json.loads(text.strip()) != value
    except json.JSONDecodeError:
        repaired = True
    if value is None:
        value = _read_fields(text)
    intent = value.get("intent")
    if intent not in INTENTS:
        intent, repaired = FALLBACK_INTENT, True
    fields: dict[str, tuple[str, ...]] = {}
    for name in FIELDS:
        items = value.get(name, [])
        if not isinstance(items, list):
            items, repaired = [], True
        kept = tuple(dict.fromkeys(i.strip() for i in items if isinstance(i, str) and i.strip()))
        repaired |= len(kept) != len(items)
        fields[name] = kept
    return Extraction(intent, **fields), repaired
