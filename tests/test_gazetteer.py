"""gazetteer baseline: catalog names matched longest-first, intent by ordered cue rules."""

from __future__ import annotations

import functools
import json

from movie_slices import real_items

from pipelines.movies.gazetteer import build
from pipelines.movies.kg import GENRE_SURFACES, MOODS, THEME_PATTERNS, movies_from_items
from serving.conversation.extraction import Extraction
from serving.conversation.gazetteer import Gazetteer, normalise


@functools.cache
def gazetteer() -> Gazetteer:
    spec = json.loads(json.dumps(build(movies_from_items(real_items()))))  # as shipped: through JSON
    return Gazetteer(spec)


def test_normalise_drops_possessives_apostrophes_and_punctuation():
    assert normalise("Who is Billy Wilder's  FIRST movie?!") == "who is billy wilder first movie"
    assert normalise("Widows' Peak") == "widows peak"


def test_vocabulary_surfaces_never_mean_two_things():
    genre_forms = {normalise(f) for genre, forms in GENRE_SURFACES.items() for f in (genre, *forms)}
    theme_forms = {normalise(t) for t in (*MOODS, *THEME_PATTERNS)}
    assert not genre_forms & theme_forms


def test_longest_match_wins_and_canonical_names_come_back():
    got = gazetteer().extract("recommend a suspenseful science fiction movie like The Matrix Reloaded "
                              "with Keanu Reeves")
    assert got.intent == "recommend"
    assert got.titles == ("The Matrix Reloaded",)  # not "The Matrix"
    assert got.genres == ("Sci-Fi",) and got.themes == ("suspenseful",) and got.people == ("Keanu Reeves",)


def test_intents_follow_the_rules_in_order():
    g = gazetteer()
    assert g.extract("who directed Vertigo?") == Extraction("trivia", titles=("Vertigo",))
    assert g.extract("I can't log in to my account").intent == "help"
    assert g.extract("hello there, how are you?") == Extraction("chitchat")
    assert g.extract("who directed Vertigo? and something like Rear Window").intent == "recommend"
    assert g.extract("Martin Scorsese").intent == "recommend"  # a bare entity is a request


def test_everyday_one_word_titles_are_not_matched_but_the_model_may_still_write_them():
    assert gazetteer().extract("something up to date with heat").titles == ()
    assert gazetteer().title_items["Heat"] == ["6"]
    assert {"Heat", "Up"} <= gazetteer().names()["titles"]  # "something like Heat" must not become "Hatari!"


def test_mentions_keep_overlapping_names_and_names_are_the_canonical_ones():
    mentioned = gazetteer().mentions("something like the matrix reloaded")
    assert {"The Matrix", "The Matrix Reloaded"} <= mentioned["titles"]  # overlaps kept: candidates, not a parse
    names = gazetteer().names()
    assert mentioned["titles"] <= names["titles"] and "Keanu Reeves" in names["people"]
    assert names["genres"] == set(GENRE_SURFACES)
