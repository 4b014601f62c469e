"""Answer a conversational movie request: route by intent, use its entities, explain each suggestion.

- recommend: named titles become item-to-item anchors (`more_like`), named genres a category
  filter; candidates naming the requested people or genres come first. Each suggestion gets one
  sentence built only from metadata it shares with the anchor ("If you enjoyed Heat, you might like
  Collateral: same director (Michael Mann), also a crime film.") or with the request.
- trivia: the named title's own record; chitchat / help: a short pointer, no items.

`extract` is any text -> Extraction function. A snapshot's `intent/` folder (`Conversation.load`)
ships both extractors, the LoRA-tuned LM as an ONNX decoder step (`serving.conversation.intent_model`,
onnxruntime + tokenizers only, decoding constrained to catalog names) and the gazetteer
(`gazetteer.json`), and names the one to use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from serving.conversation.constrained import EntityConstraint
from serving.conversation.extraction import Extraction
from serving.conversation.gazetteer import Gazetteer
from serving.conversation.intent_model import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, IntentModel
from serving.conversation.movie_facts import decade, split_names
from serving.hits import Hit

GAZETTEER_FILE, CHOICE_FILE = "gazetteer.json", "conversation.json"
Extractor = Literal["model", "gazetteer"]
EXTRACTORS: tuple[str, ...] = get_args(Extractor)
NEEDS: dict[str, tuple[str, ...]] = {  # the files each extractor reads from an intent folder
    "gazetteer": (GAZETTEER_FILE,), "model": (GAZETTEER_FILE, MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE)}

MESSAGES = {
    "chitchat": "Hi! Tell me a movie you liked, a genre, a director, an actor or a mood, and I'll suggest films.",
    "help": "For account, billing or playback problems, please contact support; I can suggest movies.",
    "trivia": "Here is what the catalog knows about it.",
    "recommend": "",
}


class Searcher(Protocol):
    """What `ask` needs of a snapshot (serving.snapshot.Snapshot)."""

    def search(self, text: str, k: int = 10, filters: Mapping[str, Any] | None = None) -> list[Hit]: ...
    def more_like(self, item_id: str, k: int = 10, filters: Mapping[str, Any] | None = None) -> list[Hit]: ...
    def item(self, item_id: str) -> Hit: ...


@dataclass(frozen=True)
class Suggestion:
    hit: Hit
    explanation: str


@dataclass(frozen=True)
class Answer:
    request: Extraction
    suggestions: list[Suggestion]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.request.intent, "request": self.request.to_dict(), "message": self.message,
                "items": [s.hit.to_dict() | {"explanation": s.explanation} for s in self.suggestions]}

    def __str__(self) -> str:
        """What a person reads: the request as understood, any message, then each suggestion with its why."""
        understood = "; ".join(f"{name}: {', '.join(values)}" for name, values in self.request.to_dict().items()
                               if name != "intent" and values)
        lines = [f"intent: {self.request.intent}" + (f" ({understood})" if understood else "")]
        lines += [self.message] if self.message else []
        lines += [f"{rank}. {s.hit.title} [{s.hit.item_id}]: {s.explanation}"
                  for rank, s in enumerate(self.suggestions, 1)]
        return "\n".join(lines)


def people_of(hit: Hit) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(directors, cast) of an item."""
    return split_names(hit.creator), split_names(hit.attributes.get("cast"))


def and_list(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def a_film(genres: Sequence[str]) -> str:
    """'a crime and thriller film', 'an action film'."""
    kind = and_list(genres)
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} film"


def shared_facts(anchor: Hit, hit: Hit) -> list[str]:
    """Facts true of both items, in words: director, cast, genres, decade."""
    (directors_a, cast_a), (directors_b, cast_b) = people_of(anchor), people_of(hit)
    facts = []
    same_directors = [p for p in directors_b if p in directors_a]
    if same_directors:
        facts.append(f"same director ({and_list(same_directors)})")
    same_cast = [p for p in cast_b if p in cast_a and p not in same_directors][:2]  # not cameos again
    if same_cast:
        facts.append(f"also starring {and_list(same_cast)}")
    genres = [g.lower() for g in (hit.categories or []) if g in (anchor.categories or [])][:3]
    same_decade = decade(hit.year) if decade(hit.year) == decade(anchor.year) else None
    if genres or same_decade:
        kind = a_film(genres) if genres else "a film"
        facts.append(f"also {kind}" + (f" from the {same_decade}" if same_decade else ""))
    return facts


def matched_facts(request: Extraction, hit: Hit) -> list[str]:
    """Facts of the item that the request asked for: its people and genres."""
    directors, cast = people_of(hit)
    facts = [f"directed by {p}" for p in request.people if p in directors]
    facts += [f"starring {p}" for p in request.people if p in cast and p not in directors]
    genres = [g.lower() for g in request.genres if g in (hit.categories or [])]
    if genres:
        facts.append(a_film(genres))
    return facts


def explain(hit: Hit, anchor: Hit | None, request: Extraction) -> str:
    if anchor is not None:
        facts = shared_facts(anchor, hit)
        lead = f"If you enjoyed {anchor.title}, you might like {hit.title}"
    else:
        facts = matched_facts(request, hit)
        lead = f"{hit.title}" + (f" ({hit.year})" if hit.year else "") + " fits your request"
    return lead + (f": {', '.join(facts)}." if facts else ".")


def requested_first(hits: list[Hit], request: Extraction) -> list[Hit]:
    """Stable re-order: items matching more of the requested people and genres first."""
    def matches(hit: Hit) -> int:
        directors, cast = people_of(hit)
        return (sum(p in directors or p in cast for p in request.people)
                + sum(g in (hit.categories or []) for g in request.genres))
    return sorted(hits, key=lambda hit: -matches(hit))


def ask(searcher: Searcher, extract: Callable[[str], Extraction], title_items: Mapping[str, Sequence[str]],
        text: str, k: int = 10, pool: int = 5) -> Answer:
    """Answer `text` with up to k suggestions; `pool` x k candidates are fetched before re-ordering."""
    request = extract(text)
    anchors = [searcher.item(i) for title in request.titles for i in title_items.get(title, ())[:1]]
    if request.intent == "trivia":
        return Answer(request, [Suggestion(a, explain(a, None, request)) for a in anchors[:1]], MESSAGES["trivia"])
    if request.intent != "recommend":
        return Answer(request, [], MESSAGES[request.intent])
    filters = {"categories": list(request.genres)} if request.genres else None
    if anchors:  # round-robin over the anchors' neighbours
        per_anchor = [[(hit, a) for hit in requested_first(searcher.more_like(a.item_id, k * pool, filters), request)]
                      for a in anchors]
        ranked = [pair for group in zip_longest(*per_anchor) for pair in group if pair is not None]
    else:
        hits = searcher.search(text, k * pool, filters) or searcher.search(text, k * pool)
        ranked = [(hit, None) for hit in requested_first(hits, request)]
    anchor_ids = {a.item_id for a in anchors}
    seen: set[str] = set()
    suggestions = []
    for hit, anchor in ranked:
        if hit.item_id in anchor_ids or hit.item_id in seen:
            continue
        seen.add(hit.item_id)
        suggestions.append(Suggestion(hit, explain(hit, anchor, request)))
    return Answer(request, suggestions[:k], MESSAGES["recommend"])


def constrained_extractor(model: IntentModel, gazetteer: Gazetteer) -> Callable[[str], Extraction]:
    """The intent model with entity-constrained decoding: a field's names are the ones the message
    mentions (the gazetteer's matches, overlaps included), or any catalog name if it mentions none."""
    catalog = EntityConstraint(gazetteer.names())
    return lambda text: model.extract(text, catalog.restricted(gazetteer.mentions(text)))


def shipped(folder: str | Path) -> tuple[Extractor, ...]:
    """The extractors an intent folder carries (a catalog without an LM may ship the gazetteer alone)."""
    return tuple(kind for kind in EXTRACTORS if all((Path(folder) / name).is_file() for name in NEEDS[kind]))


@dataclass(frozen=True)
class Conversation:
    """What a snapshot needs to answer conversational requests: an extractor and title -> item ids."""

    extract: Callable[[str], Extraction]
    title_items: Mapping[str, Sequence[str]]
    kind: Extractor
    folder: Path | None = None  # the intent folder it was loaded from

    @classmethod
    def load(cls, folder: str | Path, kind: Extractor | None = None) -> Conversation:
        """From an intent folder (`semrec intent --out`): `kind`, by default the one its
        conversation.json names (the stage picks the better of the two on held-out queries)."""
        folder = Path(folder)
        if kind is None:
            kind = json.loads((folder / CHOICE_FILE).read_text(encoding="utf-8"))["extractor"]
        if kind not in EXTRACTORS:
            raise ValueError(f"{folder}: extractor must be one of {EXTRACTORS}, not {kind!r}")
        missing = [name for name in NEEDS[kind] if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: the {kind} extractor needs {', '.join(missing)}")
        gazetteer = Gazetteer.load(folder / GAZETTEER_FILE)
        extract = constrained_extractor(IntentModel.load(folder), gazetteer) if kind == "model" else gazetteer.extract
        return cls(extract, gazetteer.title_items, kind, folder)

    def ask(self, searcher: Searcher, text: str, k: int = 10) -> Answer:
        return ask(searcher, self.extract, self.title_items, text, k)
