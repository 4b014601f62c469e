"""synth stage: labelled conversational movie queries from a grammar over the catalog's knowledge graph.

Each query comes from a template filled with facts of one anchor movie, so its intent, entities
(canonical names) and target items (every movie satisfying all its constraints) are known by
construction. Query i draws from its own `Random(f"{seed}:{i}")` (a rotating seed): the output is a
pure function of (catalog, params). Queries built on the same entity filling share a group, and a
group lies wholly in train, validation or test (pipelines.common.split), so no template instance leaks.
Validation is what later stages tune on for conversational requests (efSearch, the hybrid weight).
The noisy set perturbs test queries only (typos, a dropped word, two requests in one message).

    semrec synth --items data/movies/ingest/items.parquet --out data/movies/synth \
        --pairs-out data/movies/ingest/extra_pairs/synth      # the encoder pairs, where the pairs stage reads them
"""

from __future__ import annotations

import argparse
import random
import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.atomic import write_json, write_parquet
from pipelines.common.params import load_section
from pipelines.common.schemas import PAIRS, SYNTH_QUERIES, conform
from pipelines.common.split import check_fractions, side
from pipelines.movies.kg import (GENRE_SURFACES, MOODS, THEME_PATTERNS, Movie, film_counts, movies_from_items,
                                 plot_fragments)
from serving.conversation.extraction import FIELDS, INTENTS, Extraction, Intent

Noise = Literal["typo", "missing_word", "multi_intent"]
NOISES: tuple[Noise, ...] = get_args(Noise)

# A multi-intent message is routed by its most actionable request.
INTENT_PRECEDENCE: tuple[Intent, ...] = ("recommend", "trivia", "help", "chitchat")

TEMPLATES: dict[Intent, tuple[str, ...]] = {
    "recommend": (
        "something like {title}", "movies similar to {title}", "I loved {title}, what should I watch next?",
        "recommend me films like {title}", "if I liked {title} what else would I enjoy?",
        "any movies in the vein of {title}?", "what should I watch after {title}", "more like {title} please",
        "a good {genre} movie", "recommend some {genre} films", "what are the best {genre} movies?",
        "I'm in the mood for a {genre} film", "movies directed by {director}", "films by {director}",
        "something from {director}", "I want to watch a {director} film", "what's a good {director} movie?",
        "movies starring {actor}", "films with {actor} in them", "anything with {actor}",
        "I'm a big fan of {actor}, what should I watch?", "show me {actor} movies",
        "a {mood} movie for tonight", "something {mood} to watch", "I want to see something {mood}",
        "recommend a {mood} film", "a movie about {theme}", "films involving {theme}",
        "any good movies about {theme}?", "looking for a story about {theme}", "the movie where {plot}",
        "a film in which {plot}", "looking for a movie: {plot}", "what's that movie where {plot}?",
        "{genre} movies directed by {director}", "a {genre} film with {actor}", "a {mood} {genre} movie",
        "{director} movies starring {actor}", "a {genre} movie about {theme}",
        "something like {title} but more {mood}", "a {mood} movie with {actor}",
        "{genre} films from {director} about {theme}",
    ),
    "trivia": (
        "who directed {title}?", "when did {title} come out?", "who stars in {title}?",
        "what year was {title} released?", "what genre is {title}?", "who wrote {title}?",
        "how long is {title}?", "is {title} based on a true story?", "how old is {actor}?",
        "what was {director}'s first movie?", "has {actor} ever won an oscar?", "where was {director} born?",
    ),
    "chitchat": (
        "{greeting}", "{greeting}, how are you?", "{thanks}", "{thanks}, that's all for now", "{joke}",
        "{greeting}, {joke}", "{farewell}", "{thanks}, {farewell}", "{about_you}", "{greeting}! {about_you}",
        "{compliment}", "{small_talk}", "{greeting}, {small_talk}", "{greeting}, how's your day going?",
    ),
    "help": (
        "how do I {action} my {thing}?", "I can't {action} my {thing}", "where can I {action} my {thing}?",
        "{action} my {thing}", "help, {problem}", "{problem}", "{problem}, what do I do?",
    ),
}

# Fill-ins with no entity value (chit-chat and help); entity slots come from the anchor movie. Each
# chit-chat kind has several phrasings, so the split holds out phrasings, not a whole kind of small talk.
WORDS: dict[str, tuple[str, ...]] = {
    "greeting": ("hi", "hello", "hey", "hey there", "good morning", "good evening", "yo", "hiya"),
    "thanks": ("thanks", "thank you", "thanks a lot", "cheers", "much appreciated", "great, thanks"),
    "joke": ("tell me a joke", "know any good jokes?", "make me laugh", "got a joke for me?", "say something funny",
             "do you know any riddles?", "tell me a funny story"),
    "farewell": ("good night", "bye", "goodbye", "see you later", "talk to you later", "catch you later",
                 "I'm off to bed", "have a nice day"),
    "about_you": ("what's your name?", "are you a robot?", "who made you?", "how old are you?",
                  "do you have feelings?", "are you a real person?", "where do you live?", "do you ever sleep?"),
    "compliment": ("you're awesome", "you're so helpful", "good job", "nice one", "you're the best",
                   "I like talking to you", "that was helpful", "you're funny"),
    "small_talk": ("what's up?", "nice to meet you", "do you like talking to people?", "what did you do today?",
                   "I had a long day", "what's your favourite colour?", "how's the weather where you are?"),
    "action": ("reset", "change", "update", "cancel", "delete", "find", "recover"),
    "thing": ("password", "subscription", "account", "payment method", "email address", "watchlist",
              "profile", "billing details", "plan"),
    "problem": ("the app keeps crashing", "the video won't load", "I was charged twice",
                "I forgot my password", "my download is stuck", "the subtitles are out of sync",
                "I can't log in", "the sound is not working"),
}
PREFIXES = ("", "", "", "hey, ", "ok ", "so ", "please ", "quick question: ", "um ")
CONNECTORS = (" and ", ". also ", ", and ", "! ", " - ")
_SLOT = re.compile(r"\{(\w+)\}")



@dataclass(frozen=True)
class Query:
    query_id: str
    template: str
    group: str  # the entity filling; decides the split
    text: str
    intent: Intent
    titles: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    noise: Noise | None = None
    spans: tuple[str, ...] = field(default=(), compare=False)  # entity surfaces in `text` (kept intact by noise)


@dataclass(frozen=True)
class SynthParams:
    seed: int
    n_queries: int
    test_fraction: float
    validation_fraction: float
    intent_weights: dict[str, float]
    min_director_films: int
    min_actor_films: int
    lowercase_rate: float
    pair_max_targets: int

    def __post_init__(self) -> None:
        unknown = set(self.intent_weights) - set(INTENTS)
        if unknown:
            raise ValueError(f"synth.intent_weights: unknown intent(s) {sorted(unknown)}; known: {INTENTS}")
        check_fractions("synth", self.test_fraction, self.validation_fraction)


class Catalog:
    """The knowledge graph as lookups: who/what each slot may be, and which movies match a constraint."""

    def __init__(self, movies: list[Movie], min_director_films: int, min_actor_films: int):
        self.movies = movies
        directors, cast = film_counts(movies)
        self.directors = {p for p, n in directors.items() if n >= min_director_films}
        self.actors = {p for p, n in cast.items() if n >= min_actor_films}
        self.index: dict[tuple[str, str], set[str]] = defaultdict(set)
        for m in movies:
            for key in [("director", p) for p in m.directors] + [("actor", p) for p in m.cast] + [
                    ("genre", g) for g in m.genres] + [("theme", t) for t in m.themes]:
                self.index[key].add(m.item_id)
        self.genre_sets: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for m in movies:
            self.genre_sets[tuple(sorted(m.genres))].add(m.item_id)
        self.plots = {m.item_id: plot_fragments(m) for m in movies}

    def like(self, m: Movie) -> set[str]:
        """Movies a 'like X' request targets: X's directors' other films, else films with X's exact genres."""
        same_director = set().union(*(self.index[("director", p)] for p in m.directors)) - {m.item_id}
        return same_director or (self.genre_sets[tuple(sorted(m.genres))] - {m.item_id})


def clean_title(title: str) -> bool:
    return "(" not in title and len(title.split()) <= 8 and not title.endswith((", The", ", A", ", An"))


def fill(intent: Intent, template: str, m: Movie, catalog: Catalog, rng: random.Random) -> Query | None:
    """Fill `template` from anchor movie `m`; None when `m` lacks a fact a slot needs."""
    values: dict[str, str] = {}
    labels: dict[str, list[str]] = {name: [] for name in FIELDS}
    constraints: list[tuple[str, str]] = []
    spans: list[str] = []
    for slot in _SLOT.findall(template):
        if slot in WORDS:
            values[slot] = rng.choice(WORDS[slot])
            continue
        if slot == "title":
            if not clean_title(m.title):
                return None
            values[slot] = m.title
            labels["titles"].append(m.title)
        elif slot in ("director", "actor"):
            pool = sorted(set(m.directors if slot == "director" else m.cast) & (
                catalog.directors if slot == "director" else catalog.actors))
            if not pool:
                return None
            values[slot] = rng.choice(pool)
            labels["people"].append(values[slot])
            constraints.append((slot, values[slot]))
        elif slot == "genre":
            pool = sorted(g for g in m.genres if g in GENRE_SURFACES)
            if not pool:
                return None
            genre = rng.choice(pool)
            values[slot] = rng.choice(GENRE_SURFACES[genre])
            labels["genres"].append(genre)
            constraints.append(("genre", genre))
        elif slot in ("mood", "theme"):
            pool = sorted(t for t in m.themes if t in (MOODS if slot == "mood" else THEME_PATTERNS))
            if not pool:
                return None
            values[slot] = rng.choice(pool)
            labels["themes"].append(values[slot])
            constraints.append(("theme", values[slot]))
        elif slot == "plot":
            if not catalog.plots[m.item_id]:
                return None
            values[slot] = rng.choice(catalog.plots[m.item_id])
            constraints.append(("item", m.item_id))
        else:
            raise ValueError(f"template {template!r}: unknown slot {{{slot}}}")
        if slot != "plot":
            spans.append(values[slot])
    targets = targets_of(intent, m, labels, constraints, catalog)
    if intent == "recommend" and not targets:
        return None
    text = template.format(**values)
    group = "|".join(f"{k}={v}" for k, v in sorted(values.items())) if spans or "plot" in values else text
    return Query("", template, group, text, intent, *(tuple(labels[f]) for f in FIELDS),
                 targets=tuple(sorted(targets)), spans=tuple(spans))


def targets_of(intent: Intent, m: Movie, labels: dict[str, list[str]], constraints: list[tuple[str, str]],
               catalog: Catalog) -> set[str]:
    if intent == "trivia":
        return {m.item_id} if labels["titles"] else set()
    if intent != "recommend":
        return set()
    matches = [{value} if kind == "item" else catalog.index[(kind, value)] for kind, value in constraints]
    if labels["titles"]:
        matches.append(catalog.like(m))
    return set.intersection(*matches) if matches else set()


def surface(text: str, rng: random.Random, lowercase_rate: float) -> str:
    """How a user types it: an optional lead-in, first letter capitalised, sometimes all lower case."""
    text = rng.choice(PREFIXES) + text
    return text.lower() if rng.random() < lowercase_rate else text[0].upper() + text[1:]


def generate_one(i: int, catalog: Catalog, params: SynthParams) -> Query:
    rng = random.Random(f"{params.seed}:{i}")
    intents = [i for i in INTENTS if params.intent_weights.get(i, 0) > 0]
    for _ in range(200):
        intent = rng.choices(intents, weights=[params.intent_weights[i] for i in intents])[0]
        query = fill(intent, rng.choice(TEMPLATES[intent]), rng.choice(catalog.movies), catalog, rng)
        if query is not None:
            return replace(query, query_id=f"q{i:06d}", text=surface(query.text, rng, params.lowercase_rate))
    raise ValueError(f"synth: query {i}: no template could be filled in 200 draws (catalog too small?)")


def typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "double", "replace"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == "drop":
        return word[:i] + word[i + 1:]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    return word[:i] + rng.choice(string.ascii_lowercase) + word[i + 1:]


def add_noise(query: Query, kind: Noise, other: Query, rng: random.Random) -> Query | None:
    """A noisy variant with the same labels (multi-intent: both requests' labels, the precedent intent)."""
    if kind == "multi_intent":
        first, second = (query, other) if rng.random() < 0.5 else (other, query)
        text = first.text.rstrip("?.!") + rng.choice(CONNECTORS) + second.text[0].lower() + second.text[1:]
        intent = min((query.intent, other.intent), key=INTENT_PRECEDENCE.index)
        merged = {f: tuple(dict.fromkeys(getattr(first, f) + getattr(second, f))) for f in FIELDS}
        targets = query.targets if query.intent == intent else other.targets
        return replace(query, template=f"{first.template}+{second.template}", text=text, intent=intent,
                       targets=targets, noise=kind, **merged)
    words = query.text.split(" ")
    protected = {w for span in query.spans for w in span.lower().split()}
    if kind == "typo":
        candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        if not candidates:
            return None
        i = rng.choice(candidates)
        words[i] = typo(words[i], rng)
    else:
        candidates = [i for i, w in enumerate(words) if w.lower().strip("?,.!:") not in protected]
        if len(words) < 3 or not candidates:
            return None
        del words[rng.choice(candidates)]
    return replace(query, text=" ".join(words), noise=kind)


def noisy_set(test: list[Query], seed: int) -> list[Query]:
    """One noisy variant per test query, the noise kind rotating; multi-intent pairs with another intent."""
    by_intent: dict[Intent, list[Query]] = defaultdict(list)
    for q in test:
        by_intent[q.intent].append(q)
    noisy = []
    for j, query in enumerate(test):
        rng = random.Random(f"{seed}:noise:{j}")
        kind = NOISES[j % len(NOISES)]
        others = [i for i in INTENTS if i != query.intent and by_intent[i]]
        other = rng.choice(by_intent[rng.choice(others)]) if others else query
        variant = add_noise(query, kind, other, rng)
        if variant is not None:
            noisy.append(replace(variant, query_id=f"n{j:06d}"))
    return noisy


def generate(movies: list[Movie], params: SynthParams) -> dict[str, list[Query]]:
    """{'train', 'validation', 'test', 'noisy'} query lists; duplicate texts are dropped (the first one is kept)."""
    catalog = Catalog(movies, params.min_director_films, params.min_actor_films)
    seen: set[str] = set()
    splits: dict[str, list[Query]] = {"train": [], "validation": [], "test": []}
    for i in range(params.n_queries):
        query = generate_one(i, catalog, params)
        key = query.text.lower()
        if key not in seen:
            seen.add(key)
            splits[side(query.group, params.seed, params.test_fraction, params.validation_fraction)].append(query)
    splits["noisy"] = noisy_set(splits["test"], params.seed)
    return splits


def encoder_pairs(queries: list[Query], max_targets: int) -> pa.Table:
    """(query, item) pairs for the encoder (`semrec pairs --extra-<side>`): recommend queries
    whose request is specific (at most `max_targets` matching movies), one pair per matching movie."""
    rows = [{"query_id": f"{q.query_id}:{target}", "query": q.text, "item_id": target, "kind": "synthetic"}
            for q in queries if q.intent == "recommend" and len(q.targets) <= max_targets for target in q.targets]
    return conform(pa.Table.from_pylist(rows, schema=PAIRS), PAIRS, "synthetic pairs")


def gold(row: dict) -> Extraction:
    """The labels of one SYNTH_QUERIES row as the extraction a model should produce."""
    return Extraction(row["intent"], *(tuple(row[f]) for f in FIELDS))


def to_table(queries: list[Query]) -> pa.Table:
    rows = [{name: getattr(q, name) for name in SYNTH_QUERIES.names} for q in queries]
    return conform(pa.Table.from_pylist(rows, schema=SYNTH_QUERIES), SYNTH_QUERIES, "synth queries")


def summary(splits: dict[str, list[Query]]) -> dict:
    return {
        name: {"queries": len(qs), "intents": dict(sorted(Counter(q.intent for q in qs).items())),
               "noise": dict(sorted(Counter(q.noise for q in qs if q.noise).items()))}
        for name, qs in splits.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec synth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", required=True, type=Path, help="movies items.parquet (ITEMS schema)")
    parser.add_argument("--out", required=True, type=Path,
                        help="folder for train/validation/test/noisy.parquet and synth.json")
    parser.add_argument("--pairs-out", type=Path, help="folder for <side>_pairs.parquet, the encoder pairs (default: --out)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = SynthParams(**load_section("synth", args.params))
    splits = generate(movies_from_items(pq.read_table(args.items)), params)
    for name, queries in splits.items():
        write_parquet(to_table(queries), args.out / f"{name}.parquet")
    for side in ("train", "validation", "test"):
        write_parquet(encoder_pairs(splits[side], params.pair_max_targets),
                      (args.pairs_out or args.out) / f"{side}_pairs.parquet")
    write_json(summary(splits), args.out / "synth.json")
    print(summary(splits))
    return 0
