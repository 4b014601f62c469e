"""describe stage: a short description of each movie, written from its structured metadata only.

A params-limited subset (`llm_items`, chosen by a seeded hash of the item id) is written by the small
LM from a grounded prompt; the rest, and every LLM text the validator rejects, get a deterministic
template. The validator rejects a text that names a person or title absent from the item's
metadata (a capitalised name span not found in the facts, or another catalog title). Rows are keyed
by the sha256 of (facts, generator): a rerun reuses every row whose key is unchanged, so only changed
items are regenerated (the output is its own cache; DVC keeps it with `persist`).

With `--queries`, it also measures what the descriptions are worth: Recall@10 of the synthetic
test recommendation queries against the item documents without vs with the description, using
the base encoder.

    semrec describe --items data/movies/ingest/items.parquet --llm models/llm/smollm2 \
        --out data/movies/describe/descriptions.parquet --metrics reports/movies/describe.json \
        [--queries data/movies/synth/test.parquet --encoder models/base/all-MiniLM-L6-v2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.atomic import write_json, write_parquet
from pipelines.common.metrics import recall_at
from pipelines.common.params import load_section
from pipelines.common.schemas import DESCRIPTIONS, conform
from pipelines.common.split import unit_hash
from pipelines.movies.kg import MOODS, THEME_PATTERNS, Movie, film_counts, movies_from_items
from pipelines.retrieval.encode import encode, load_model
from pipelines.retrieval.exact import exact_index

Mode = Literal["llm", "template"]
MODES: tuple[Mode, ...] = get_args(Mode)
PROMPT_VERSION = 2  # bump when the prompt, template or validator changes: every cached row is redone
PROMPT = ("Write two sentences describing this movie for a streaming catalog. Use only the facts below; "
          "do not mention any other person, title or place.\n{facts}")
# Capitalised words that start sentences or are ordinary words, not names.
FUNCTION_WORDS = frozenset(
    "The A An In On At This That These Those It Its He She They His Her Their When While After Before As "
    "With Set From Directed Starring Written Featuring Both Together Also But And Or Despite Though Although "
    "One Two Three Film Movie Story Genre Genres Drama Comedy I We You Year Title Director Cast Expect".split())
_SENTENCE_END = re.compile(r"(?<=\w[a-z0-9)][.!?])\s+")  # not after an initial ("John N. Smith")
_NAME_SPAN = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:[A-Z][\w'’.-]*|de|van|von|der|del|la|le))*")


@dataclass(frozen=True)
class DescribeParams:
    mode: Mode
    llm_items: int  # items written by the LLM (the rest: template); 0 = all when mode is llm
    seed: int
    threads: int
    max_new_tokens: int
    batch_size: int
    cast_in_facts: int  # best-known cast members named in the facts
    eval_queries: int  # synthetic test queries for the with/without-description recall
    eval_items: int  # corpus size for it (the queries' targets + seeded others)
    eval_max_targets: int  # only queries this specific

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"describe.mode must be one of {MODES}, got {self.mode!r}")


def facts_of(m: Movie, cast_counts: Counter[str], cast_in_facts: int) -> dict[str, Any]:
    """The grounded facts of one movie: all the prompt, the template and the validator may use."""
    cast = sorted(m.cast, key=lambda p: (-cast_counts[p], p))[:cast_in_facts]
    return {"title": m.title, "year": m.year, "genres": list(m.genres), "directors": list(m.directors),
            "cast": cast, "moods": [t for t in m.themes if t in MOODS],
            "subjects": [t for t in m.themes if t in THEME_PATTERNS]}


def facts_text(facts: dict[str, Any]) -> str:
    lines = [f"Title: {facts['title']}"]
    if facts["year"]:
        lines.append(f"Year: {facts['year']}")
    for key, label in (("genres", "Genres"), ("directors", "Director"), ("cast", "Starring"),
                       ("moods", "Mood"), ("subjects", "Themes")):
        if facts[key]:
            lines.append(f"{label}: {', '.join(facts[key])}")
    return "\n".join(lines)


def metadata_sha256(facts: dict[str, Any], generator: str) -> str:
    return hashlib.sha256(json.dumps([facts, generator], sort_keys=True).encode("utf-8")).hexdigest()


def and_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def template_description(facts: dict[str, Any]) -> str:
    """'Heat (1995) is a crime and thriller film directed by Michael Mann, starring Al Pacino. Expect
    something suspenseful and gritty, a story of police and heist.'"""
    year = f" ({facts['year']})" if facts["year"] else ""
    kind = and_list([g.lower() for g in facts["genres"][:3]]) if facts["genres"] else "feature"
    text = f"{facts['title']}{year} is a {kind} film"
    if facts["directors"]:
        text += f" directed by {and_list(facts['directors'])}"
    if facts["cast"]:
        text += f", starring {and_list(facts['cast'])}"
    text += "" if text.endswith(".") else "."  # "... Elisha Cook Jr."
    if facts["moods"] or facts["subjects"]:
        parts = [f"something {and_list(facts['moods'])}"] if facts["moods"] else []
        parts += [f"a story of {and_list(facts['subjects'])}"] if facts["subjects"] else []
        text += f" Expect {', '.join(parts)}."
    return text


def complete_sentences(text: str) -> str:
    """Cut a generation that stopped mid-sentence back to its last full sentence."""
    text = " ".join(text.split())
    end = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    return text if text.endswith((".", "!", "?")) else text[: end + 1] if end >= 0 else ""


def plain(text: str) -> str:
    """Lower-case words joined by single spaces, possessive 's dropped: the form names are compared in."""
    return " ".join(re.findall(r"\w+", re.sub(r"['’]s\b", "", text.lower())))


def trim(words: list[str], drop: Callable[[str], bool]) -> list[str]:
    """`words` without the leading and trailing words `drop` accepts ("The Island" -> "Island")."""
    while words and drop(words[0]):
        words = words[1:]
    while words and drop(words[-1]):
        words = words[:-1]
    return words


def rejection(text: str, facts: dict[str, Any], other_titles: set[str]) -> str | None:
    """Why `text` is not grounded in `facts` (None: accepted): each capitalised name span (bar a
    sentence's first word, and function / genre / mood words at its ends) must occur as a
    whole in the facts ("Brad Bennett" from "Brad Pitt" + "Bennett Miller" does not), and no other
    catalog title may appear."""
    if len(text.split()) < 6:
        return "too short or truncated"
    if re.search(r"\b(Title|Genres|Director|Starring|Year|Mood|Themes):", text):
        return "echoed the facts"
    grounded = f" {plain(facts_text(facts))} "
    kinds = set(plain(" ".join(facts["genres"] + facts["moods"] + facts["subjects"])).split())
    for sentence in _SENTENCE_END.split(text):
        for span in _NAME_SPAN.finditer(sentence):
            words = span.group().split()[1:] if span.start() == 0 else span.group().split()  # "Expect ..."
            names = trim(words, lambda w: w.strip(".,'’") in FUNCTION_WORDS or plain(w) in kinds)
            if names and f" {plain(' '.join(names))} " not in grounded:
                return f"ungrounded name: {' '.join(names).strip('.,')!r}"
    for title in other_titles:
        if title in text and title not in facts["title"]:
            return f"names another title: {title!r}"
    return None


def llm_descriptions(todo: list[dict[str, Any]], folder: Path, params: DescribeParams,
                     other_titles: set[str]) -> list[tuple[str | None, str | None, float, int]]:
    """Generate for each facts dict: (accepted text or None, rejection reason, seconds, new tokens),
    the seconds being the item's share of the batched generation time."""
    from pipelines.movies import llm

    if not todo:
        return []
    model, tokenizer = llm.load(folder)
    prompts = [llm.chat_prompt(tokenizer, PROMPT.format(facts=facts_text(f))) for f in todo]
    started = time.perf_counter()
    generations = llm.generate(model, tokenizer, prompts, params.max_new_tokens, params.batch_size)
    share = (time.perf_counter() - started) / len(todo)
    results = []
    for facts, generation in zip(todo, generations):
        text = complete_sentences(generation.text)
        reason = rejection(text, facts, other_titles - {facts["title"]})
        results.append((None if reason else text, reason, share, generation.new_tokens))
    return results


def throughput(rows: list[dict[str, Any]]) -> dict[str, float]:
    """LLM generation speed over every LLM row, cached ones with the time of the run that wrote them."""
    generated = [r for r in rows if r["generation_seconds"] is not None]
    if not generated:
        return {"items": 0}
    seconds = sum(r["generation_seconds"] for r in generated)
    tokens = sum(r["new_tokens"] for r in generated)
    return {"items": len(generated), "seconds": round(seconds, 1), "tokens_per_s": round(tokens / seconds, 1),
            "items_per_s": round(len(generated) / seconds, 3)}


def cached_rows(path: Path) -> dict[str, dict[str, Any]]:
    """An earlier run's rows by item id: none if there is no earlier output or it predates the schema."""
    if not path.exists():
        return {}
    table = pq.read_table(path)
    if not set(DESCRIPTIONS.names) <= set(table.column_names):
        print(f"describe: {path} predates the current schema, every row is regenerated")
        return {}
    return {r["item_id"]: r for r in conform(table, DESCRIPTIONS, str(path)).to_pylist()}


def describe(movies: list[Movie], previous: dict[str, dict[str, Any]], llm_folder: Path | None,
             params: DescribeParams) -> tuple[pa.Table, dict[str, Any]]:
    """Descriptions for all movies (reusing `previous` rows by key) and the stage's metrics."""
    _, cast_counts = film_counts(movies)
    by_llm = sorted(movies, key=lambda m: unit_hash(m.item_id, params.seed))
    if params.mode == "llm":
        by_llm = by_llm if params.llm_items <= 0 else by_llm[: params.llm_items]
    else:
        by_llm = []
    llm_ids = {m.item_id for m in by_llm}
    generator = f"llm:{llm_folder.name if llm_folder else ''}:{params.max_new_tokens}:v{PROMPT_VERSION}"
    rows, todo, reused = {}, [], 0
    for m in movies:
        facts = facts_of(m, cast_counts, params.cast_in_facts)
        key = metadata_sha256(facts, generator if m.item_id in llm_ids else f"template:v{PROMPT_VERSION}")
        cached = previous.get(m.item_id)
        if cached and cached["metadata_sha256"] == key:
            rows[m.item_id] = cached
            reused += 1
        elif m.item_id in llm_ids:
            todo.append((m.item_id, key, facts))
        else:
            rows[m.item_id] = {"item_id": m.item_id, "metadata_sha256": key, "description": template_description(facts),
                               "source": "template", "rejected": None, "generation_seconds": None, "new_tokens": None}
    other_titles = {m.title for m in movies if len(m.title.split()) >= 2}
    if todo and llm_folder is None:
        raise ValueError("describe: mode llm needs --llm (the small LM folder)")
    generated = llm_descriptions([f for _, _, f in todo], llm_folder, params, other_titles)
    for (item_id, key, facts), (text, reason, seconds, new_tokens) in zip(todo, generated):
        rows[item_id] = {"item_id": item_id, "metadata_sha256": key, "description": text or template_description(facts),
                         "source": "llm" if text else "template", "rejected": reason,
                         "generation_seconds": seconds, "new_tokens": new_tokens}
    ordered = [rows[m.item_id] for m in movies]
    llm_rows = [r for r in ordered if r["item_id"] in llm_ids]
    rejected = [r for r in llm_rows if r["rejected"]]
    metrics = {
        "items": len(ordered), "llm_items": len(llm_rows), "generated_now": len(todo),
        "reused_from_cache": reused,
        "llm_accepted": len(llm_rows) - len(rejected), "llm_rejected": len(rejected),
        "hallucination_rejection_rate": round(len(rejected) / len(llm_rows), 4) if llm_rows else 0.0,
        "rejections_by_reason": dict(Counter(r["rejected"].split(":")[0] for r in rejected)),
        "template": sum(r["source"] == "template" for r in ordered), "llm_throughput": throughput(llm_rows),
    }
    return conform(pa.Table.from_pylist(ordered, schema=DESCRIPTIONS), DESCRIPTIONS, "descriptions"), metrics


def recall_with_without(items: pa.Table, descriptions: pa.Table, queries: list[dict[str, Any]], encoder: Path,
                        params: DescribeParams) -> dict[str, Any]:
    """Recall@10 of specific synthetic recommendation queries against the item documents, without vs
    with the description appended; the corpus is the queries' targets plus seeded other items."""
    import numpy as np

    queries = [q for q in queries if q["intent"] == "recommend" and 0 < len(q["targets"]) <= params.eval_max_targets]
    queries = queries[: params.eval_queries]
    wanted = {t for q in queries for t in q["targets"]}
    others = sorted((i for i in items.column("item_id").to_pylist() if i not in wanted),
                    key=lambda i: unit_hash(i, params.seed))
    corpus = sorted(wanted) + others[: max(0, params.eval_items - len(wanted))]
    document = dict(zip(items.column("item_id").to_pylist(), items.column("document").to_pylist()))
    description = dict(zip(descriptions.column("item_id").to_pylist(), descriptions.column("description").to_pylist()))
    model = load_model(encoder)
    query_vectors = encode(model, [q["text"] for q in queries], 64)
    result: dict[str, Any] = {"queries": len(queries), "corpus": len(corpus)}
    for variant in ("without", "with"):
        texts = [document[i] + (f" {description[i]}" if variant == "with" else "") for i in corpus]
        ranked = exact_index(corpus, encode(model, texts, 64)).search(query_vectors, 10)
        recalls = [recall_at(row, dict.fromkeys(q["targets"], 1.0), 10) for row, q in zip(ranked, queries)]
        result[f"recall@10_{variant}_description"] = round(float(np.mean(recalls)), 4)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec describe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", required=True, type=Path, help="movies items.parquet (ITEMS schema)")
    parser.add_argument("--llm", type=Path, help="small LM folder (semrec llm); needed when mode is llm")
    parser.add_argument("--out", required=True, type=Path, help="descriptions.parquet (also the cache)")
    parser.add_argument("--metrics", required=True, type=Path, help="describe.json to write")
    parser.add_argument("--queries", type=Path, help="synthetic test queries, for the with/without recall")
    parser.add_argument("--encoder", type=Path, help="base sentence-transformers folder, with --queries")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = DescribeParams(**load_section("describe", args.params))
    if bool(args.queries) != bool(args.encoder):
        parser.error("--queries and --encoder go together")
    import torch

    torch.set_num_threads(params.threads)
    items = pq.read_table(args.items)
    previous = cached_rows(args.out)
    table, metrics = describe(movies_from_items(items), previous, args.llm, params)
    write_parquet(table, args.out)
    if args.queries:
        metrics["retrieval"] = recall_with_without(items, table, pq.read_table(args.queries).to_pylist(),
                                                   args.encoder, params)
    write_json(metrics, args.metrics)
    print(metrics)
    return 0
