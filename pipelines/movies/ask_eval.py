"""ask_eval stage: Recall@10 of the synthetic conversational test queries, through `ask` vs plain search.

Runs on the published movie snapshot through the reader's public API, with the intent folder's
extractors (`serving.ask.Conversation`). Each specific recommendation request (at most
`max_targets` matching movies) is answered by plain dense `search(text)` (the retrieval path), by
`ask` with the exported intent model, with the gazetteer, and with the gold extraction (routing
with perfect understanding: the upper bound an extractor chases). Clean test and noisy sets alike.

    semrec ask-eval --root published --catalog movies --intent models/movies/intent \
        --synth data/movies/synth --out reports/movies/ask.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from pipelines.common.atomic import write_json
from pipelines.common.metrics import recall_at
from pipelines.common.params import load_section
from pipelines.movies.synth import gold
from serving.conversation.ask import EXTRACTORS, Conversation, ask
from serving.reader import Reader


def specific_requests(rows: list[dict[str, Any]], max_targets: int, limit: int) -> list[dict[str, Any]]:
    rows = [r for r in rows if r["intent"] == "recommend" and 0 < len(r["targets"]) <= max_targets]
    return rows if limit <= 0 else rows[:limit]


def recall_of(ranked: list[list[str]], rows: list[dict[str, Any]]) -> float:
    return round(float(np.mean([recall_at(r, dict.fromkeys(q["targets"], 1.0), 10)
                                for r, q in zip(ranked, rows)])), 4)


def evaluate(searcher: Any, conversations: list[Conversation], rows: list[dict[str, Any]]) -> dict[str, Any]:
    texts = [q["text"] for q in rows]
    labels = dict(zip(texts, (gold(q) for q in rows)))
    title_items = conversations[0].title_items
    answers = {"search": [[h.item_id for h in searcher.search(t, 10)] for t in texts]}
    for conversation in conversations:
        answers[f"ask_{conversation.kind}"] = [[s.hit.item_id for s in conversation.ask(searcher, t, 10).suggestions]
                                              for t in texts]
    answers["ask_gold_extraction"] = [[s.hit.item_id for s in ask(searcher, labels.__getitem__, title_items, t,
                                                                  10).suggestions] for t in texts]
    return {"queries": len(rows)} | {f"recall@10_{name}": recall_of(ranked, rows) for name, ranked in answers.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec ask-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="published snapshots (a folder or fsspec URL)")
    parser.add_argument("--catalog", default="movies")
    parser.add_argument("--intent", required=True, type=Path, help="folder with the extractor (gazetteer.json)")
    parser.add_argument("--synth", required=True, type=Path, help="folder with test.parquet and noisy.parquet")
    parser.add_argument("--out", required=True, type=Path, help="ask.json to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_section("ask_eval", args.params)
    conversations = [Conversation.load(args.intent, kind) for kind in EXTRACTORS]
    with tempfile.TemporaryDirectory(prefix="semrec-ask-eval-") as cache:
        reader = Reader.open(args.root, args.catalog, cache_dir=cache)
        report: dict[str, Any] = {"snapshot": reader.snapshot.snapshot_id,
                                  "served_extractor": Conversation.load(args.intent).kind}
        for name in ("test", "noisy"):
            rows = specific_requests(pq.read_table(args.synth / f"{name}.parquet").to_pylist(),
                                     params["max_targets"], params["queries"])
            report["clean" if name == "test" else "noisy"] = evaluate(reader.snapshot, conversations, rows)
    write_json(report, args.out)
    print(report)
    return 0
