"""ask: routing by intent, entities as anchors / filters, explanations from shared metadata only."""

from __future__ import annotations

import functools
import itertools
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from movie_slices import real_items

from pipelines.movies.ask_eval import evaluate
from pipelines.movies.gazetteer import build
from pipelines.movies.kg import movies_from_items
from serving.conversation.ask import Answer, Conversation, ask, explain, people_of
from serving.conversation.extraction import Extraction
from serving.conversation.gazetteer import Gazetteer
from serving.conversation.movie_facts import decade
from serving.filters import Filters
from serving.hits import Hit, hits_from
from serving.shards import METADATA

TITLES = ("Heat", "Collateral", "Thief", "The Insider", "Casino", "Goodfellas", "Vertigo", "Rear Window",
          "Psycho", "The Godfather", "Toy Story", "Alien", "Jaws", "Fargo", "Taxi Driver", "Ali")


@functools.cache
def catalog() -> list[Hit]:
    items = real_items()
    items = items.filter(pc.is_in(items["title"], value_set=pa.array(TITLES)))
    return hits_from(items.select(METADATA.names), np.ones(items.num_rows))


class Shelf:
    """A stand-in snapshot over a few real items: similarity = shared genres + same director."""

    def item(self, item_id: str) -> Hit:
        return next(h for h in catalog() if h.item_id == item_id)

    def _allowed(self, filters) -> list[Hit]:
        f = Filters.parse(filters)
        return [h for h in catalog() if not f.categories or set(f.categories) & set(h.categories or [])]

    def more_like(self, item_id: str, k: int = 10, filters=None) -> list[Hit]:
        a = self.item(item_id)
        score = lambda h: len(set(h.categories) & set(a.categories)) + 2 * (h.creator == a.creator)  # noqa: E731
        return sorted((h for h in self._allowed(filters) if h.item_id != item_id), key=lambda h: -score(h))[:k]

    def search(self, text: str, k: int = 10, filters=None) -> list[Hit]:
        return self._allowed(filters)[:k]


@functools.cache
def gazetteer() -> Gazetteer:
    return Gazetteer(json.loads(json.dumps(build(movies_from_items(real_items())))))


class ShelfReader:
    """A stand-in reader (ask_eval's Asker) over the Shelf, serving the gazetteer."""

    snapshot = Shelf()

    def __init__(self) -> None:
        self.snapshot.conversation = Conversation(gazetteer().extract, gazetteer().title_items, "gazetteer")

    def search(self, text: str, k: int = 10) -> list[Hit]:
        return self.snapshot.search(text, k)

    def ask(self, text: str, k: int = 10) -> Answer:
        return self.snapshot.conversation.ask(self.snapshot, text, k)


def answer(text: str) -> Answer:
    return ask(Shelf(), gazetteer().extract, gazetteer().title_items, text, k=5)


def test_explanations_name_only_facts_both_items_have():
    mentioned = 0
    for anchor, hit in itertools.permutations(catalog(), 2):
        text = explain(hit, anchor, Extraction("recommend"))
        assert text.startswith(f"If you enjoyed {anchor.title}, you might like {hit.title}")
        claims = text.split(f"you might like {hit.title}", 1)[1]
        people = set(itertools.chain(*people_of(anchor), *people_of(hit)))
        shared_people = set(itertools.chain(*people_of(anchor))) & set(itertools.chain(*people_of(hit)))
        assert {p for p in people if p in claims} <= shared_people, text
        genres = {g.lower() for g in (anchor.categories or []) + (hit.categories or [])}
        named = {g for g in genres if re.search(rf"\b{re.escape(g)}\b", claims)}
        assert named <= {g.lower() for g in set(anchor.categories) & set(hit.categories)}, text
        for said in re.findall(r"\d{4}s", claims):
            assert said == decade(anchor.year) == decade(hit.year), text
        mentioned += bool(shared_people & {p for p in people if p in claims})
    assert mentioned  # some pairs do share people (Heat / Collateral: Michael Mann)


def test_a_title_becomes_an_anchor_and_is_not_suggested_back():
    result = answer("something like Collateral")
    assert result.request.titles == ("Collateral",) and len(result.suggestions) == 5
    assert "Collateral" not in [s.hit.title for s in result.suggestions]
    first = result.suggestions[0]
    assert first.hit.creator == "Michael Mann"
    assert first.explanation.startswith(
        f"If you enjoyed Collateral, you might like {first.hit.title}: same director (Michael Mann)")


def test_genres_filter_and_requested_people_come_first():
    result = answer("a crime movie directed by Martin Scorsese")
    assert all("Crime" in s.hit.categories for s in result.suggestions)
    firsts = [s.hit.title for s in result.suggestions[:3]]
    assert set(firsts) == {"Casino", "Goodfellas", "Taxi Driver"}
    assert "directed by Martin Scorsese" in result.suggestions[0].explanation


def test_trivia_returns_the_item_and_other_intents_no_items():
    trivia = answer("who directed Vertigo?")
    assert trivia.request.intent == "trivia" and [s.hit.title for s in trivia.suggestions] == ["Vertigo"]
    for text, intent in (("hello there!", "chitchat"), ("I was charged twice", "help")):
        result = answer(text)
        assert result.request.intent == intent and result.suggestions == [] and result.message
    assert json.loads(json.dumps(answer("something like Collateral").to_dict()))["items"][0]["explanation"]


def test_ask_eval_scores_search_ask_and_gold_routing_on_the_same_requests():
    by_title = {h.title: h.item_id for h in catalog()}
    scorsese = [by_title[t] for t in ("Casino", "Goodfellas", "Taxi Driver")]
    rows = [{"text": "a crime film directed by Martin Scorsese", "intent": "recommend", "titles": [],
             "genres": ["Crime"], "people": ["Martin Scorsese"], "themes": [], "targets": scorsese}]
    report = evaluate(ShelfReader(), rows)
    assert report["queries"] == 1
    assert report["recall@10_ask_gazetteer"] == report["recall@10_ask_gold_extraction"] == 1.0
    first_ten = {h.item_id for h in catalog()[:10]}  # the stand-in's plain search: the shelf in order
    assert report["recall@10_search"] == round(len(first_ten & set(scorsese)) / 3, 4)
