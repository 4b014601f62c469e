"""The BEIR mode: a dataset in the BEIR layout, embedded and indexed in-process, searched by the shipped path.

Layout: corpus.jsonl lines {"_id", "title", "text"}; queries.jsonl lines {"_id", "text"};
qrels/<split>.tsv: a header, then `query-id<TAB>corpus-id<TAB>score` rows (score: graded relevance).
Only queries with at least one positive judgement are kept; a judgement naming an unknown document
or query is an error, as is a malformed line (file and line named).

The corpus is embedded by the embed stage's code and indexed by the index stage's (the snapshot's HNSW
settings, efSearch tuned as the index stage does) in a temporary folder, with BM25 over the corpus; a
BEIR corpus has no popularity, so the prior is off.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines.common.atomic import write_parquet
from pipelines.common.queries import QuerySet
from pipelines.common.schemas import DOCUMENTS
from pipelines.embed import embed_to_npy
from pipelines.evaluation.inputs import ModelFolders
from pipelines.evaluation.params import EvaluateParams
from pipelines.evaluation.run import Inputs
from pipelines.index import IndexSettings, build_index
from pipelines.retrieval.shipped import local_snapshot
from pipelines.retrieval.systems import Corpus
from serving.encoder import Encoder
from serving.fusion import Fusion
from serving.shards import METADATA


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


@dataclass(frozen=True)
class ShippedPath:
    """The encoder and fusion a BEIR corpus is searched with, and the HNSW settings it is indexed with."""
    encoder: Encoder
    fusion: Fusion
    settings: IndexSettings
    source: str  # what was scored, for the report


def served_path(root: str, catalog: str, params: EvaluateParams) -> ShippedPath:
    """What the live `catalog` snapshot of store `root` serves: its encoder, fusion, m and efConstruction."""
    from serving.reader import Reader

    served = Reader.open(root, catalog, threads=1).snapshot
    settings = replace(IndexSettings.from_params(params.beir, "evaluate.beir"), m=served.index.manifest.m,
                       ef_construction=served.index.manifest.ef_construction)
    return ShippedPath(served.encoder, served.fusion, settings, f"{root}/{catalog}/{served.snapshot_id}")


def local_path(encoder: Path, fusion: Fusion, params: EvaluateParams) -> ShippedPath:
    return ShippedPath(Encoder.load(encoder, "int8", threads=1), fusion,
                       IndexSettings.from_params(params.beir, "evaluate.beir"), str(encoder))


@contextmanager
def beir_inputs(data: BeirDataset, path: ShippedPath, models: ModelFolders, params: EvaluateParams,
                dataset: str) -> Iterator[Inputs]:
    """The evaluation inputs of a BEIR dataset, its index built in a temporary folder (gone on exit)."""
    corpus = Corpus(data.doc_ids, data.documents)
    sets = {"beir": QuerySet(data.queries, data.qrels, [set() for _ in data.queries], ["beir"] * len(data.queries))}
    with tempfile.TemporaryDirectory(prefix="semrec-beir-") as tmp:
        work = Path(tmp)
        write_parquet(pa.table({"item_id": data.doc_ids, "document": data.documents}, schema=DOCUMENTS),
                      work / "documents.parquet")
        n = len(data.doc_ids)
        write_parquet(pa.table({"item_id": data.doc_ids, "title": data.titles, **{
            name: [None] * n for name in METADATA.names if name not in ("item_id", "title")}}, schema=METADATA),
            work / "items.parquet")
        embed_to_npy(path.encoder, data.documents, work / "embeddings.npy", params.batch_size)
        queries = {"queries": path.encoder.encode(data.queries, batch_size=params.batch_size)}
        index_report = build_index(work / "index", work / "documents.parquet", work / "embeddings.npy",
                                   work / "items.parquet", queries, path.settings)
        snapshot = local_snapshot(work / "index", path.encoder, dict(zip(corpus.ids, corpus.texts)), path.fusion)
        folders, aliases = models.systems(None)
        context = {"dataset": dataset, "encoder": path.source, "index_build": index_report}
        yield Inputs(corpus, sets, snapshot, folders, aliases, None, context)
