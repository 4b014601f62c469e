"""synth: the grammar generator is deterministic by seed, and its labels are true by construction."""

from __future__ import annotations

import dataclasses
import functools

import pytest
from movie_slices import real_items

from pipelines.movies.kg import GENRE_SURFACES, MOODS, THEME_PATTERNS, movies_from_items
from pipelines.movies.synth import INTENT_PRECEDENCE, TEMPLATES, SynthParams, encoder_pairs, generate, to_table
from serving.conversation.extraction import INTENTS

PARAMS = SynthParams(seed=3, n_queries=900, test_fraction=0.25, validation_fraction=0.1,
                     intent_weights={"recommend": 0.6, "trivia": 0.15, "chitchat": 0.1, "help": 0.15},
                     min_director_films=2, min_actor_films=3, lowercase_rate=0.3, pair_max_targets=3)


@functools.cache
def movies():
    return movies_from_items(real_items())


@functools.cache
def splits():
    return generate(movies(), PARAMS)


def test_same_seed_same_queries_other_seed_other_queries():
    again = generate(movies(), PARAMS)
    for name in ("train", "test", "noisy"):
        assert to_table(again[name]).equals(to_table(splits()[name]))
    other = generate(movies(), dataclasses.replace(PARAMS, seed=4))
    assert [q.text for q in other["train"]] != [q.text for q in splits()["train"]]


def test_every_intent_and_noise_kind_is_generated():
    assert {q.intent for q in splits()["train"]} == set(INTENTS)
    assert {q.noise for q in splits()["noisy"]} == {"typo", "missing_word", "multi_intent"}
    assert all(q.noise is None for q in splits()["train"] + splits()["test"])


def test_labels_name_what_the_text_says():
    for q in splits()["train"] + splits()["test"]:
        text = q.text.lower()
        for name in (*q.titles, *q.people, *q.themes):
            assert name.lower() in text, (q.text, name)
        for genre in q.genres:
            assert any(form in text for form in GENRE_SURFACES[genre]), (q.text, genre)
        assert set(q.themes) <= set(MOODS) | set(THEME_PATTERNS)


def test_targets_satisfy_every_constraint_of_the_request():
    by_id = {m.item_id: m for m in movies()}
    recommend = [q for q in splits()["test"] if q.intent == "recommend"]
    assert len(recommend) > 50
    for q in recommend:
        assert q.targets, q.text
        for target in map(by_id.get, q.targets):
            assert set(q.genres) <= set(target.genres), (q.text, target.title)
            assert set(q.themes) <= set(target.themes), (q.text, target.title)
            assert all(p in target.people for p in q.people), (q.text, target.title)
            if q.titles:  # "like X": another film by X's director, else one with exactly X's genres
                assert any(m.title == q.titles[0] and m.item_id != target.item_id and (
                    set(m.directors) & set(target.directors) or set(m.genres) == set(target.genres))
                    for m in movies()), (q.text, target.title)


def test_no_entity_filling_is_on_two_sides_and_noise_comes_from_test_only():
    sides = ("train", "validation", "test")
    groups = {side: {q.group for q in splits()[side]} for side in sides}
    texts = {side: {q.text.lower() for q in splits()[side]} for side in sides}
    assert all(groups[side] for side in sides)
    for one, other in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not groups[one] & groups[other] and not texts[one] & texts[other]
    assert {q.group for q in splits()["noisy"]} <= groups["test"]


def test_multi_intent_takes_the_most_actionable_intent_and_both_requests_entities():
    intent_of = {template: intent for intent, templates in TEMPLATES.items() for template in templates}
    multi = [q for q in splits()["noisy"] if q.noise == "multi_intent"]
    assert len(multi) > 20
    for q in multi:
        intents = [intent_of[part] for part in q.template.split("+")]
        assert len(set(intents)) == 2
        assert q.intent == min(intents, key=INTENT_PRECEDENCE.index)
        for name in (*q.titles, *q.people, *q.themes):
            assert name.lower() in q.text.lower(), (q.text, name)


def test_encoder_pairs_come_from_specific_requests_and_keep_the_split():
    made = splits()
    train, validation, test = (encoder_pairs(made[side], max_targets=3).to_pylist()
                               for side in ("train", "validation", "test"))
    queries = [{p["query"] for p in side} for side in (train, validation, test)]
    assert all(queries) and not (queries[0] & queries[1] or queries[0] & queries[2] or queries[1] & queries[2])
    requests = {q.text: q for q in made["train"] + made["validation"] + made["test"]}
    for pair in train + validation + test:
        query = requests[pair["query"]]
        assert query.intent == "recommend" and len(query.targets) <= 3 and pair["item_id"] in query.targets
        assert pair["kind"] == "synthetic"


def test_unknown_intent_weight_is_refused():
    with pytest.raises(ValueError, match="unknown intent"):
        dataclasses.replace(PARAMS, intent_weights={"recommend": 1.0, "smalltalk": 1.0})


@pytest.mark.parametrize("fractions", [(0.0, 0.1), (0.5, 0.5), (0.2, -0.1)])
def test_split_fractions_are_checked(fractions):
    with pytest.raises(ValueError, match="test_fraction"):
        dataclasses.replace(PARAMS, test_fraction=fractions[0], validation_fraction=fractions[1])
