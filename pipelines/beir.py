"""Read a dataset in the BEIR layout: corpus.jsonl, queries.jsonl and qrels/<split>.tsv.

corpus.jsonl lines: {"_id", "title", "text"}; queries.jsonl lines: {"_id", "text"};
qrels/<split>.tsv: a header, then `query-id<TAB>corpus-id<TAB>score` rows (score: graded relevance).
Only queries with at least one positive judgement are kept; a judgement naming an unknown document
or query is an error, as is a malformed line (file and line named).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BeirDataset:
    doc_ids: list[str]
    documents: list[str]  # "title. text" (text alone when untitled), as BEIR's dense baselines embed it
    titles: list[str]
    query_ids: list[str]
    queries: list[str]
    qrels: list[dict[str, float]]  # per query (same order): corpus id -> relevance grade > 0


def read_jsonl(path: Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not JSON: {err}") from err
            missing = [f for f in fields if not isinstance(row.get(f), str)]
            if missing:
                raise ValueError(f"{path}:{number}: field(s) {missing} missing or not text")
            rows.append(row)
    return rows


def read_qrels(path: Path) -> dict[str, dict[str, float]]:
    qrels: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
            raise ValueError(f"{path}:1: header must be query-id, corpus-id, score; got {header}")
        for number, row in enumerate(reader, 2):
            if len(row) != 3:
                raise ValueError(f"{path}:{number}: expected 3 tab-separated fields, got {len(row)}")
            try:
                score = float(row[2])
            except ValueError as err:
                raise ValueError(f"{path}:{number}: score {row[2]!r} is not a number") from err
            qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    folder = Path(folder)
    corpus = read_jsonl(folder / "corpus.jsonl", ("_id", "text"))
    queries = {row["_id"]: row["text"] for row in read_jsonl(folder / "queries.jsonl", ("_id", "text"))}
    qrels_path = folder / "qrels" / f"{split}.tsv"
    qrels = read_qrels(qrels_path)
    doc_ids = [row["_id"] for row in corpus]
    known = set(doc_ids)
    if len(known) != len(doc_ids):
        raise ValueError(f"{folder / 'corpus.jsonl'}: duplicate _id values")
    unknown_docs = sorted({d for judged in qrels.values() for d in judged} - known)
    unknown_queries = sorted(set(qrels) - set(queries))
    if unknown_docs or unknown_queries:
        raise ValueError(f"{qrels_path}: unknown corpus ids {unknown_docs[:5]} / query ids {unknown_queries[:5]}")
    titles = [str(row.get("title") or "") for row in corpus]
    judged = [(q, {d: s for d, s in qrels[q].items() if s > 0}) for q in sorted(qrels)]
    judged = [(q, rel) for q, rel in judged if rel]
    return BeirDataset(
        doc_ids=doc_ids,
        documents=[f"{title}. {row['text']}" if title else row["text"] for title, row in zip(titles, corpus)],
        titles=titles,
        query_ids=[q for q, _ in judged],
        queries=[queries[q] for q, _ in judged],
        qrels=[rel for _, rel in judged],
    )
