"""pseudo: text-grounded movie queries from real catalog facts; the round trip and the split by movie."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from movie_slices import items_titled, real_items
from sentence_transformers import SentenceTransformer

from pipelines.common.split import unquoted
from pipelines.movies.kg import movie_from_row
from pipelines.movies.pseudo import Pseudo, PseudoParams, build, fill, generate, ict_sentences, round_trip, split_by_movie

BASE = Path(__file__).resolve().parents[1] / "models" / "base" / "all-MiniLM-L6-v2"
PARAMS = PseudoParams(seed=3, test_fraction=0.2, validation_fraction=0.2, per_movie=3, ict_per_movie=2,
                      ict_min_words=8, ict_max_words=45, llm_items=0, llm_max_new_tokens=16, llm_batch_size=4,
                      round_trip_k=3, cast_in_facts=4, batch_size=16)


@pytest.fixture(scope="module")
def encoder() -> SentenceTransformer:
    return SentenceTransformer(str(BASE), device="cpu")


def test_templates_fill_only_from_the_movies_own_facts():
    (row,) = items_titled("Heat").to_pylist()
    movie = movie_from_row(row)
    queries, values = generate([movie], PARAMS)
    templates = [q for q in queries if q.kind == "pseudo_template"]
    assert 1 <= len(templates) <= PARAMS.per_movie and all(q.item_id == movie.item_id for q in queries)
    facts = values[movie.item_id]
    assert facts["director"] == ["Michael Mann"] and facts["decade"] == ["1990s"]
    text = fill("{director}'s {genre} film from the {decade}", facts, random.Random(0))
    assert text is not None and text.startswith("Michael Mann's ") and text.endswith(" film from the 1990s")
    assert fill("{actor} and {actor2} in a film about {theme}", facts | {"actor": ["A"], "theme": ["heist"]},
                random.Random(0)) is None  # a second, different actor is needed and missing


def test_inverse_cloze_sentences_skip_the_first_and_never_name_the_title():
    items = real_items()
    with_summary = [movie_from_row(r) for r in items.to_pylist() if r["description"]][:40]
    found = {m.item_id: ict_sentences(m, PARAMS) for m in with_summary}
    assert sum(map(len, found.values())) > 20
    for movie in with_summary:
        first = movie.summary.split(". ")[0]
        for sentence in found[movie.item_id]:
            assert sentence in movie.summary and movie.title.lower() not in sentence.lower()
            assert not first.startswith(sentence) and 8 <= len(sentence.split()) <= 45
    document = "Heat (1995) [SEP] A detective chases a thief. The thief plans one last heist. [SEP] Cast: Al Pacino"
    assert unquoted(document, ["The thief plans one last heist."]) == \
        "Heat (1995) [SEP] A detective chases a thief. [SEP] Cast: Al Pacino"


def test_round_trip_drops_a_query_that_does_not_retrieve_its_source(encoder):
    documents = ["Heat (1995) [SEP] Genres: Crime, Thriller [SEP] Directed by Michael Mann [SEP] Cast: Al Pacino",
                 "Toy Story (1995) [SEP] Genres: Animation, Children [SEP] Directed by John Lasseter",
                 "Alien (1979) [SEP] Genres: Horror, Sci-Fi [SEP] Directed by Ridley Scott [SEP] Cast: Sigourney Weaver",
                 "Clueless (1995) [SEP] Genres: Comedy, Romance [SEP] Directed by Amy Heckerling"]
    queries = [Pseudo("crime thriller directed by Michael Mann with Al Pacino", "heat", "pseudo_template"),
               Pseudo("a space horror film by Ridley Scott", "alien", "pseudo_template"),
               # about Toy Story, but claimed for Clueless: neither retriever ranks Clueless near the top
               Pseudo("animated toys come alive, by John Lasseter", "clueless", "pseudo_llm")]
    keep, rates = round_trip(queries, documents, {"heat": 0, "toy": 1, "alien": 2, "clueless": 3}, encoder, k=1,
                             batch_size=4)
    assert keep.tolist() == [True, True, False]
    assert rates["either"] == pytest.approx(2 / 3, abs=1e-4)


def test_the_split_puts_every_movie_on_one_side_only(encoder):
    items = real_items().slice(0, 300)
    tables, metrics = build(items, PARAMS, encoder, llm_folder=None)
    movies = {side: set(table.column("item_id").to_pylist()) for side, table in tables.items()}
    assert all(movies.values())
    assert not (movies["train"] & movies["validation"] or movies["train"] & movies["test"]
                or movies["validation"] & movies["test"])
    assert sum(metrics["pairs"].values()) == sum(metrics["kept"].values()) <= sum(metrics["generated"].values())
    again, _ = build(items, PARAMS, encoder, llm_folder=None)
    assert all(again[side].equals(tables[side]) for side in tables)  # seeded: the same pairs again


def test_split_by_movie_is_a_function_of_the_movie_alone():
    queries = [Pseudo(f"query {i}", f"m{i % 7}", "pseudo_template") for i in range(70)]
    sides = split_by_movie(queries, PARAMS)
    owner = {}
    for side, table in sides.items():
        for item in table.column("item_id").to_pylist():
            assert owner.setdefault(item, side) == side
