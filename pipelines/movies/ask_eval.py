"""ask_eval stage: Recall@10 of the synthetic conversational test queries, through `ask` vs plain search.

Measured on the published movie snapshot only, as a downstream service gets it: `Reader.open(root,
"movies")` pulls and verifies it, and the served answers are `reader.ask(text)` (the extractor the
snapshot's `intent/conversation.json` names). Each specific recommendation request (at most
`max_targets` matching movies) is also answered by plain `reader.search(text)` (the retrieval
path), by `ask` with the snapshot's other extractor where it ships one (the exported intent model
or the gazetteer), and by `ask` with the gold extraction (routing with perfect understanding: the
upper bound an extractor chases). Clean test and noisy sets alike.

    semrec ask-eval --root published --catalog movies --synth data/movies/synth --out reports/movies/ask.json
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow.parquet as pq

from pipelines.common.atomic import write_json
from pipelines.common.metrics import recall_at
from pipelines.common.params import load_section
from pipelines.movies.synth import gold
from serving.conversation.ask import Answer, Conversation, Searcher, ask, shipped
from serving.hits import Hit
from serving.reader import Reader


class Asker(Protocol):
    """What the evaluation needs of a reader (serving.reader.Reader)."""

    @property
    def snapshot(self) -> Any: ...  # a Searcher with the `conversation` it serves
    def search(self, text: str, k: int = 10) -> list[Hit]: ...
    def ask(self, text: str, k: int = 10) -> Answer: ...


def specific_requests(rows: list[dict[str, Any]], max_targets: int, limit: int) -> list[dict[str, Any]]:
    rows = [r for r in rows if r["intent"] == "recommend" and 0 < len(r["targets"]) <= max_targets]
    return rows if limit <= 0 else rows[:limit]


def recall_of(ranked: list[list[str]], rows: list[dict[str, Any]]) -> float:
    return round(float(np.mean([recall_at(r, dict.fromkeys(q["targets"], 1.0), 10)
                                for r, q in zip(ranked, rows)])), 4)


def suggested(answer: Answer) -> list[str]:
    return [s.hit.item_id for s in answer.suggestions]


def evaluate(reader: Asker, rows: list[dict[str, Any]], others: Sequence[Conversation] = ()) -> dict[str, Any]:
    """Recall@10 per answering path on `rows`: search, the served ask, `others`' ask, gold routing."""
    texts = [q["text"] for q in rows]
    labels = dict(zip(texts, (gold(q) for q in rows)))
    snapshot: Searcher = reader.snapshot
    served: Conversation = reader.snapshot.conversation
    answers = {"search": [[h.item_id for h in reader.search(t, 10)] for t in texts],
               f"ask_{served.kind}": [suggested(reader.ask(t, 10)) for t in texts]}
    for conversation in others:
        answers[f"ask_{conversation.kind}"] = [suggested(conversation.ask(snapshot, t, 10)) for t in texts]
    answers["ask_gold_extraction"] = [suggested(ask(snapshot, labels.__getitem__, served.title_items, t, 10))
                                      for t in texts]
    return {"queries": len(rows)} | {f"recall@10_{name}": recall_of(ranked, rows) for name, ranked in answers.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec ask-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="published snapshots (a folder or fsspec URL)")
    parser.add_argument("--catalog", default="movies")
    parser.add_argument("--synth", required=True, type=Path, help="folder with test.parquet and noisy.parquet")
    parser.add_argument("--out", required=True, type=Path, help="ask.json to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_section("ask_eval", args.params)
    with tempfile.TemporaryDirectory(prefix="semrec-ask-eval-") as cache:
        reader = Reader.open(args.root, args.catalog, cache_dir=cache)
        served = reader.snapshot.conversation
        if served is None:
            parser.error(f"{args.root}/{args.catalog}: snapshot {reader.snapshot.snapshot_id} ships no intent/ "
                         "folder (publish it with --intent)")
        others = [Conversation.load(served.folder, kind) for kind in shipped(served.folder) if kind != served.kind]
        report: dict[str, Any] = {"snapshot": reader.snapshot.snapshot_id, "served_extractor": served.kind}
        for name in ("test", "noisy"):
            rows = specific_requests(pq.read_table(args.synth / f"{name}.parquet").to_pylist(),
                                     params["max_targets"], params["queries"])
            report["clean" if name == "test" else "noisy"] = evaluate(reader, rows, others)
    write_json(report, args.out)
    print(report)
    return 0
