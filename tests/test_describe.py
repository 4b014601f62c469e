"""describe: grounded descriptions, the hallucination check, and the metadata-hash cache."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from movie_slices import items_titled, real_items, small_lm

from pipelines.movies.describe import DescribeParams, cached_rows, describe, facts_of, rejection, template_description
from pipelines.movies.kg import film_counts, movies_from_items

PARAMS = DescribeParams(mode="llm", llm_items=0, seed=1, threads=1, max_new_tokens=24, batch_size=4,
                        cast_in_facts=3, eval_queries=10, eval_items=50, eval_max_targets=10)
HEAT = {"title": "Heat", "year": 1995, "genres": ["Action", "Crime", "Thriller"], "directors": ["Michael Mann"],
        "cast": ["Al Pacino", "Robert De Niro"], "moods": ["gritty"], "subjects": ["heist"]}


def test_template_is_built_from_the_facts_and_passes_the_check():
    movies = movies_from_items(real_items())
    _, cast = film_counts(movies)
    for m in movies[:300]:
        facts = facts_of(m, cast, 3)
        text = template_description(facts)
        assert text.startswith(m.title) and rejection(text, facts, {"Some Other Film"}) is None, text


def test_check_rejects_names_and_titles_absent_from_the_metadata():
    ok = "Heat is a 1995 crime thriller from Michael Mann, with Al Pacino and Robert De Niro's best work."
    assert rejection(ok, HEAT, {"The Insider"}) is None
    assert rejection("Heat is a crime film starring Al Pacino and Tom Cruise.", HEAT, set()) == \
        "ungrounded name: 'Tom Cruise'"
    assert rejection("Heat is a 1995 thriller set in Los Angeles with Al Pacino.", HEAT, set()) == \
        "ungrounded name: 'Los Angeles'"
    assert rejection("Heat is a tense crime film in the style of The Insider, really.", HEAT, {"The Insider"}) \
        .startswith("ungrounded name")
    assert rejection("Heat is a crime thriller that many call a cousin of the insider.", HEAT, {"the insider"}) == \
        "names another title: 'the insider'"
    assert rejection("Heat is a 1995 Action Thriller directed by Robert Mann.", HEAT, set()) == \
        "ungrounded name: 'Robert Mann'"  # both words are in the facts, the name is not
    assert rejection("Title: Heat Genres: Crime Director: Michael Mann", HEAT, set()) == "echoed the facts"
    assert rejection("Heat.", HEAT, set()) == "too short or truncated"


def test_template_mode_needs_no_model_and_reuses_its_rows():
    movies = movies_from_items(items_titled("Heat", "Collateral", "Vertigo"))
    params = dataclasses.replace(PARAMS, mode="template")
    table, metrics = describe(movies, {}, None, params)
    assert table["source"].to_pylist() == ["template"] * 3 and metrics["llm_items"] == 0
    again, metrics = describe(movies, {r["item_id"]: r for r in table.to_pylist()}, None, params)
    assert again.equals(table) and metrics["reused_from_cache"] == 3


def test_an_output_older_than_the_schema_is_no_cache(tmp_path):
    movies = movies_from_items(items_titled("Heat", "Vertigo"))
    table, _ = describe(movies, {}, None, dataclasses.replace(PARAMS, mode="template"))
    pq.write_table(table.drop_columns(["new_tokens"]), tmp_path / "old.parquet")
    assert cached_rows(tmp_path / "old.parquet") == {}
    pq.write_table(table, tmp_path / "new.parquet")
    assert set(cached_rows(tmp_path / "new.parquet")) == {m.item_id for m in movies}


@pytest.mark.slow
def test_llm_describes_real_items_and_regenerates_only_changed_ones():
    torch.set_num_threads(PARAMS.threads)
    items = items_titled("Heat", "Vertigo", "Toy Story")
    movies = movies_from_items(items)
    first, metrics = describe(movies, {}, small_lm(), PARAMS)
    assert metrics["generated_now"] == 3 and metrics["llm_accepted"] + metrics["llm_rejected"] == 3
    assert metrics["llm_throughput"]["tokens_per_s"] > 0
    for row in first.to_pylist():  # a rejected text falls back to the template, with its reason kept
        assert (row["source"] == "llm") == (row["rejected"] is None)
    previous = {r["item_id"]: r for r in first.to_pylist()}
    cast = json.loads(items["attributes"][0].as_py()) | {"cast": "Al Pacino, Val Kilmer"}
    changed = items.set_column(items.schema.get_field_index("attributes"), "attributes",
                               pa.array([json.dumps(cast)] + items["attributes"].to_pylist()[1:]))
    second, metrics = describe(movies_from_items(changed), previous, small_lm(), PARAMS)
    assert metrics["generated_now"] == 1 and metrics["reused_from_cache"] == 2
    assert metrics["llm_throughput"]["items"] == 3  # cached rows keep the time of the run that wrote them
    assert second.slice(1).equals(first.slice(1))
    assert second["metadata_sha256"][0] != first["metadata_sha256"][0]
    assert Counter(pc.equal(second["item_id"], first["item_id"]).to_pylist()) == Counter({True: 3})
