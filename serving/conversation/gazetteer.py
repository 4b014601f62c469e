"""Keyword/gazetteer extractor: catalog names matched longest-first, intent from ordered cue patterns.

The baseline the intent model is measured against, and the extractor `ask` falls back to. Its data
(`gazetteer.json`, built by the pipeline from the catalog) maps normalised surface forms to
canonical entity names per field, lists the intent rules in the order they are tried, and maps each
canonical title to its item ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from serving.conversation.extraction import FIELDS, INTENTS, Extraction


def normalise(text: str) -> str:
    """Lower case, possessive 's and apostrophes dropped, any other non-word run -> one space."""
    text = re.sub(r"['’]s\b", "", text.lower())
    text = re.sub(r"['’]", "", text)
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


V = TypeVar("V")


def longest_matches(tokens: Sequence[str], table: Mapping[str, V], longest: int) -> Iterator[V]:
    """The values of `table` whose keys (space-joined tokens) occur in `tokens`: left to right, the longest
    match at each position first, without overlaps. `longest`: the most tokens in a key."""
    i = 0
    while i < len(tokens):
        for length in range(min(longest, len(tokens) - i), 0, -1):
            value = table.get(" ".join(tokens[i:i + length]))
            if value is not None:
                yield value
                i += length
                break
        else:
            i += 1


class Gazetteer:
    def __init__(self, spec: dict[str, Any]):
        self.surfaces: dict[str, list[tuple[str, str]]] = {}
        for name in FIELDS:
            for surface, canonical in spec["surfaces"][name].items():
                self.surfaces.setdefault(surface, []).append((name, canonical))
        self.longest = max((len(s.split()) for s in self.surfaces), default=0)
        self.rules = [(intent, re.compile(pattern)) for intent, pattern in spec["intent_rules"]]
        unknown = {intent for intent, _ in self.rules} - set(INTENTS)
        if unknown:
            raise ValueError(f"gazetteer intent_rules: unknown intent(s) {sorted(unknown)}")
        self.title_items: dict[str, list[str]] = spec["title_items"]

    @classmethod
    def load(cls, path: str | Path) -> Gazetteer:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def names(self) -> dict[str, set[str]]:
        """The canonical names of each field: what the entity-constrained intent model may write. Every
        title, the everyday-word ones the gazetteer does not match ("Heat") included: the model reads
        them in context, and a title missing here can only come out as another one ("Hatari!")."""
        found: dict[str, set[str]] = {name: set() for name in FIELDS}
        for matches in self.surfaces.values():
            for name, canonical in matches:
                found[name].add(canonical)
        found["titles"] |= set(self.title_items)
        return found

    def mentions(self, text: str) -> dict[str, set[str]]:
        """Every canonical name whose surface form occurs in `text`, overlapping matches included."""
        tokens = normalise(text).split()
        found: dict[str, set[str]] = {name: set() for name in FIELDS}
        for i in range(len(tokens)):
            for length in range(1, min(self.longest, len(tokens) - i) + 1):
                for name, canonical in self.surfaces.get(" ".join(tokens[i:i + length]), ()):
                    found[name].add(canonical)
        return found

    def entities(self, text: str) -> dict[str, list[str]]:
        """Canonical names per field, matched longest-first, left to right, without overlaps."""
        found: dict[str, list[str]] = {name: [] for name in FIELDS}
        for matches in longest_matches(normalise(text).split(), self.surfaces, self.longest):
            for name, canonical in matches:
                if canonical not in found[name]:
                    found[name].append(canonical)
        return found

    def extract(self, text: str) -> Extraction:
        entities = self.entities(text)
        lowered = normalise(text)
        intent = next((intent for intent, rule in self.rules if rule.search(lowered)), None)
        if intent is None:
            intent = "recommend" if any(entities.values()) else "chitchat"
        return Extraction(intent, **{name: tuple(values) for name, values in entities.items()})
