"""TREC runs: each (set, system) ranking and the set's qrels, so trec_eval or ranx can re-check every number."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipelines.common.queries import QuerySet, Rankings


def write_runs(folder: Path, name: str, queries: QuerySet, ranked: Mapping[str, Rankings]) -> None:
    """`<name>.queries.tsv`, `<name>.qrels` and one `<name>.<system>.trec` run per system (query i is q<i>)."""
    qids = [f"q{i:05d}" for i in range(len(queries.texts))]
    (folder / f"{name}.queries.tsv").write_text(
        "".join(f"{qid}\t{' '.join(text.split())}\n" for qid, text in zip(qids, queries.texts)), encoding="utf-8")
    judged = [(qid, item, gain) for qid, rel in zip(qids, queries.relevance) for item, gain in sorted(rel.items())]
    (folder / f"{name}.qrels").write_text("".join(f"{qid} 0 {item} {gain:g}\n" for qid, item, gain in judged),
                                          encoding="utf-8")
    for system, rows in ranked.items():
        (folder / f"{name}.{system}.trec").write_text("".join(
            f"{qid} Q0 {item} {rank} {len(row) - rank + 1} {system}\n"
            for qid, row in zip(qids, rows) for rank, item in enumerate(row, 1)), encoding="utf-8")
