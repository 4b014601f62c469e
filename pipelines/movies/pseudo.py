"""pseudo stage: text-grounded (query, movie) pairs written from each movie's own facts and summary.

doc2query / GPL / InPars style, three kinds:
- `pseudo_template`: a paraphrase template filled with two or three of the movie's facts (genre, decade,
  director, best-known cast, mood, theme, a plot clause of its summary);
- `pseudo_llm`: the small LM writes a search query from the same facts, for a seeded subset (`llm_items`);
- `ict` (inverse cloze): a sentence of the movie's summary. The pairs stage removes every query quoted in
  its own positive document (pipelines.common.split.unquoted), so an ICT query is never a substring of
  the document it must find; the round trip below scores the documents with the same removal.
A query is kept only when it round-trips: BM25 or the base encoder ranks its source movie in the top
`round_trip_k` of every document. Movies are split train / validation / test by a seeded hash of the
item id (pipelines.common.split), so no movie's queries sit on two sides.

    semrec pseudo --items data/movies/ingest/items.parquet --encoder models/base/all-MiniLM-L6-v2 \
        --llm models/llm/smollm2 --out data/movies/ingest/extra_pairs/pseudo
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.atomic import write_json, write_parquet
from pipelines.common.params import load_section
from pipelines.common.schemas import ITEMS, PAIRS, conform
from pipelines.common.split import CLOZE_KINDS, Side, check_fractions, side, unquoted
from pipelines.movies.kg import (GENRE_SURFACES, MOODS, THEME_PATTERNS, Movie, film_counts, movie_from_row,
                                 plot_fragments)
from pipelines.retrieval.encode import encode
from pipelines.retrieval.exact import exact_index
from serving.bm25 import bm25_scores, build_bm25
from serving.conversation.movie_facts import decade

# Each template names two or three facts; `{genre}` is a surface form ("sci-fi"), `{decade}` "1990s".
TEMPLATES: tuple[str, ...] = (
    "{genre} movie directed by {director} starring {actor}",
    "a {decade} {genre} film with {actor} and {actor2}",
    "{director}'s {genre} film from the {decade}",
    "a {mood} {genre} movie starring {actor}",
    "{genre} film about {theme} directed by {director}",
    "the movie where {plot}",
    "{actor} in a {genre} movie from {year}",
    "a {year} film by {director}",
    "film about {theme} starring {actor} and {actor2}",
    "a {decade} movie in which {plot}",
    "{mood} {decade} film about {theme}",
    "{genre} movie where {plot}",
    "{actor} and {actor2} {genre} film",
    "looking for a {mood} {genre} film by {director}",
)
_SLOT = re.compile(r"\{(\w+)\}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
LLM_PROMPT = ("Here are facts about a movie:\n{facts}\n\nWrite one short search query (at most 15 words) that a "
              "viewer could type to find this movie. Answer with the query only.")


@dataclass(frozen=True)
class PseudoParams:
    seed: int
    test_fraction: float
    validation_fraction: float
    per_movie: int  # template queries tried per movie (distinct templates)
    ict_per_movie: int  # summary sentences per movie used as inverse-cloze queries
    ict_min_words: int
    ict_max_words: int
    llm_items: int  # movies whose facts the LM writes a query for (seeded choice); 0 = none
    llm_max_new_tokens: int
    llm_batch_size: int
    round_trip_k: int
    cast_in_facts: int  # best-known cast members (most catalog films) a template may name
    batch_size: int  # base-encoder batch for the round trip

    def __post_init__(self) -> None:
        check_fractions("pseudo", self.test_fraction, self.validation_fraction)
        if self.round_trip_k < 1 or self.per_movie < 0 or self.ict_per_movie < 0:
            raise ValueError("pseudo: need round_trip_k >= 1, per_movie >= 0 and ict_per_movie >= 0")


@dataclass(frozen=True)
class Pseudo:
    query: str
    item_id: str
    kind: str  # pseudo_template | pseudo_llm | ict


def facts(m: Movie, cast_counts: Counter[str], cast_in_facts: int) -> dict[str, list[str]]:
    """Slot values one movie can fill; an empty list means the slot cannot be filled."""
    cast = sorted(m.cast, key=lambda p: (-cast_counts[p], p))[:cast_in_facts]
    return {
        "genre": [g for g in m.genres if g in GENRE_SURFACES], "director": list(m.directors), "actor": cast,
        "decade": [decade(m.year)] if m.year else [], "year": [str(m.year)] if m.year else [],
        "mood": [t for t in m.themes if t in MOODS], "theme": [t for t in m.themes if t in THEME_PATTERNS],
        "plot": plot_fragments(m),
    }


def fill(template: str, values: dict[str, list[str]], rng: random.Random) -> str | None:
    """`template` filled from `values` (None when a slot has nothing; `actor2` is a second, different actor)."""
    chosen: dict[str, str] = {}
    for slot in _SLOT.findall(template):
        if slot == "actor2":
            others = [a for a in values["actor"] if a != chosen.get("actor")]
            if not others:
                return None
            chosen[slot] = rng.choice(others)
        elif slot == "genre":
            if not values["genre"]:
                return None
            chosen[slot] = rng.choice(GENRE_SURFACES[rng.choice(values["genre"])])
        elif not values[slot]:
            return None
        else:
            chosen[slot] = rng.choice(values[slot])
    return template.format(**chosen)


def template_queries(m: Movie, values: dict[str, list[str]], per_movie: int, seed: int) -> list[str]:
    """Up to `per_movie` queries from distinct templates, in a seeded order per movie."""
    rng = random.Random(f"{seed}:{m.item_id}")
    out: list[str] = []
    for template in rng.sample(TEMPLATES, len(TEMPLATES)):
        if len(out) == per_movie:
            break
        text = fill(template, values, rng)
        if text is not None and text not in out:
            out.append(text)
    return out


def ict_sentences(m: Movie, params: PseudoParams) -> list[str]:
    """Up to `ict_per_movie` summary sentences (not the first, which names the film; not naming the title)."""
    if not m.summary:
        return []
    sentences = [s.strip() for s in _SENTENCE.split(m.summary.strip())[1:]]
    fit = [s for s in sentences if params.ict_min_words <= len(s.split()) <= params.ict_max_words
           and m.title.lower() not in s.lower()]
    rng = random.Random(f"{params.seed}:ict:{m.item_id}")
    return rng.sample(fit, min(params.ict_per_movie, len(fit)))


def llm_queries(movies: Sequence[Movie], folder: Path, values: dict[str, dict[str, list[str]]],
                params: PseudoParams) -> tuple[list[Pseudo], dict[str, Any]]:
    """One LM-written query per movie (greedy); a generation naming the title is dropped."""
    from pipelines.movies import llm

    if not movies:
        return [], {"items": 0}
    model, tokenizer = llm.load(folder)
    prompts = [llm.chat_prompt(tokenizer, LLM_PROMPT.format(facts=facts_text(values[m.item_id]))) for m in movies]
    started = time.perf_counter()
    generations = llm.generate(model, tokenizer, prompts, params.llm_max_new_tokens, params.llm_batch_size)
    seconds = time.perf_counter() - started
    out = []
    for m, generation in zip(movies, generations):
        text = generation.text.strip().strip('"').splitlines()[0].strip() if generation.text.strip() else ""
        if text and m.title.lower() not in text.lower() and len(text.split()) <= 25:
            out.append(Pseudo(text, m.item_id, "pseudo_llm"))
    tokens = sum(g.new_tokens for g in generations)
    return out, {"items": len(movies), "written": len(out), "seconds": round(seconds, 1),
                 "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0}


def facts_text(values: dict[str, list[str]]) -> str:
    """The facts the LM writes from; never the title (a 135M model copies it into the query)."""
    lines = [f"{label}: {', '.join(values[key])}" for key, label in (
        ("year", "Year"), ("genre", "Genres"), ("director", "Director"), ("actor", "Starring"), ("mood", "Mood"),
        ("theme", "Themes")) if values[key]]
    if values["plot"]:
        lines.append(f"Plot: {values['plot'][0]}")
    return "\n".join(lines)


def ranks_of_source(scores: np.ndarray, source_rows: np.ndarray) -> np.ndarray:
    """1-based rank of each query's source document under `scores` (queries x documents); ties count against it."""
    own = scores[np.arange(len(source_rows)), source_rows]
    return (scores > own[:, None]).sum(axis=1) + 1


def round_trip(queries: Sequence[Pseudo], documents: Sequence[str], row_of: dict[str, int], encoder: Any,
               k: int, batch_size: int) -> tuple[np.ndarray, dict[str, float]]:
    """Which queries BM25 or the base encoder rank their source in the top k (a mask), and the pass rates."""
    if not queries:
        return np.zeros(0, dtype=bool), {}
    rows = np.array([row_of[q.item_id] for q in queries])
    bm25 = build_bm25(documents)
    lexical = np.stack([bm25_scores(bm25, q.query) for q in queries])
    index = exact_index([str(row) for row in range(len(documents))], encode(encoder, documents, batch_size))
    query_vectors = encode(encoder, [q.query for q in queries], batch_size)
    lexical_ok = ranks_of_source(lexical, rows) <= k
    lexical_ok &= lexical[np.arange(len(rows)), rows] > 0  # no shared term: BM25 did not find it
    dense_ok = ranks_of_source(index.scores(query_vectors), rows) <= k
    keep = lexical_ok | dense_ok
    return keep, {"bm25": round(float(lexical_ok.mean()), 4), "base_encoder": round(float(dense_ok.mean()), 4),
                  "either": round(float(keep.mean()), 4)}


def generate(movies: Sequence[Movie], params: PseudoParams) -> tuple[list[Pseudo], dict[str, dict[str, list[str]]]]:
    """Template and ICT queries of every movie (before the round trip), and each movie's slot values."""
    _, cast_counts = film_counts(list(movies))
    values = {m.item_id: facts(m, cast_counts, params.cast_in_facts) for m in movies}
    queries = []
    for m in movies:
        queries += [Pseudo(q, m.item_id, "pseudo_template")
                    for q in template_queries(m, values[m.item_id], params.per_movie, params.seed)]
        queries += [Pseudo(s, m.item_id, "ict") for s in ict_sentences(m, params)]
    return queries, values


def llm_subset(movies: Sequence[Movie], params: PseudoParams) -> list[Movie]:
    ranked = sorted(movies, key=lambda m: random.Random(f"{params.seed}:llm:{m.item_id}").random())
    return ranked[:max(params.llm_items, 0)]


def split_by_movie(queries: Sequence[Pseudo], params: PseudoParams) -> dict[Side, pa.Table]:
    sides: dict[Side, list[dict[str, str]]] = {"train": [], "validation": [], "test": []}
    for i, q in enumerate(queries):
        own = side(q.item_id, params.seed, params.test_fraction, params.validation_fraction)
        sides[own].append({"query_id": f"{q.kind}:{q.item_id}:{i}", "query": q.query, "item_id": q.item_id,
                           "kind": q.kind})
    return {name: conform(pa.Table.from_pylist(rows, schema=PAIRS), PAIRS, f"pseudo {name}")
            for name, rows in sides.items()}


def build(items: pa.Table, params: PseudoParams, encoder: Any, llm_folder: Path | None
          ) -> tuple[dict[Side, pa.Table], dict[str, Any]]:
    """Generate, round-trip filter and split; returns the pairs per side and the stage's metrics."""
    rows = items.to_pylist()
    movies = [movie_from_row(row) for row in rows]
    queries, values = generate(movies, params)
    llm_made, llm_report = ([], {"items": 0}) if llm_folder is None else llm_queries(
        llm_subset(movies, params), llm_folder, values, params)
    queries += llm_made
    quoted: dict[str, list[str]] = {}
    for q in queries:
        if q.kind in CLOZE_KINDS:
            quoted.setdefault(q.item_id, []).append(q.query)
    documents = [unquoted(row["document"], quoted.get(row["item_id"], ())) for row in rows]
    keep, pass_rates = round_trip(queries, documents, {row["item_id"]: i for i, row in enumerate(rows)}, encoder,
                                  params.round_trip_k, params.batch_size)
    kept = [q for q, ok in zip(queries, keep) if ok]
    tables = split_by_movie(kept, params)
    kinds = sorted({q.kind for q in queries})
    metrics = {
        "movies": len(movies), "generated": dict(Counter(q.kind for q in queries)),
        "kept": dict(Counter(q.kind for q in kept)),
        "round_trip_pass_rate": {kind: round(float(np.mean([ok for q, ok in zip(queries, keep) if q.kind == kind])), 4)
                                 for kind in kinds} | {"all": pass_rates},
        "llm": llm_report,
        "pairs": {name: table.num_rows for name, table in tables.items()},
        "movies_per_side": {name: len(set(table.column("item_id").to_pylist())) for name, table in tables.items()},
    }
    return tables, metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec pseudo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", required=True, type=Path, help="movies items.parquet (ITEMS schema)")
    parser.add_argument("--encoder", required=True, type=Path, help="the base sentence-transformers folder")
    parser.add_argument("--llm", type=Path, help="the small LM folder (llm stage); without it no pseudo_llm queries")
    parser.add_argument("--out", required=True, type=Path, help="folder for <side>_pairs.parquet and pseudo.json")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = PseudoParams(**load_section("pseudo", args.params))
    from sentence_transformers import (
        SentenceTransformer,  # heavy: only for the round trip
    )

    encoder = SentenceTransformer(str(args.encoder), device="cpu")
    items = conform(pq.read_table(args.items), ITEMS, str(args.items))
    tables, metrics = build(items, params, encoder, args.llm if params.llm_items > 0 else None)
    for name, table in tables.items():
        write_parquet(table, args.out / f"{name}_pairs.parquet")
    write_json(metrics, args.out / "pseudo.json")
    print(f"pseudo: {metrics['pairs']} pairs kept of {sum(metrics['generated'].values())} generated")
    return 0
