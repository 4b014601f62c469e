"""Retrieval quality on the hard test split: the ablation table with paired bootstrap 95% CIs.

Rows (systems), all ranking the same documents for the same queries:
  bm25        BM25 (bm25s, serving.hybrid's tokenization) over the documents
  zero_shot   the base sentence-transformers model, exact search
  fp32        the fine-tuned sentence-transformers model (PyTorch FP32), exact search
  int8_exact  the fine-tuned INT8 ONNX encoder (the embed stage's vectors), exact search
  int8_hnsw   the same vectors through the sharded HNSW index at its tuned efSearch: what ships
Each metric comes with a percentile bootstrap CI over queries, and `paired_vs_<reference>` holds
reference minus each other system with a paired CI (same resamples). Also: mean cosine of relevant
(query, item) pairs before and after fine-tuning, and batch-1 query latency of the shipped path.

    semrec evaluate --documents ... --pairs test_hard.parquet ... --out reports/fashion
    semrec evaluate --beir DIR --encoder models/fashion/onnx --out reports/beir/DIR_NAME
    semrec evaluate --beir DIR --snapshot URL --catalog fashion --out ...   (the published encoder)

A BEIR-layout dataset (pipelines/beir.py) goes through the same embed, index and search code.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.beir import load_beir
from pipelines.common.atomic import write_json, write_parquet
from pipelines.common.bootstrap import Interval, interval, paired_difference, resample_weights
from pipelines.common.metrics import Relevance, parse_metric, per_query
from pipelines.common.params import load_section
from pipelines.common.schemas import DOCUMENTS, PAIRS, conform
from pipelines.embed import embed_to_npy
from pipelines.eval_report import SYSTEMS, markdown, plot_latency, plot_recall_curves, write_text
from pipelines.index import IndexSettings, ann_recall, build_index
from serving.encoder import Encoder
from serving.hybrid import build_bm25, tokenize
from serving.shards import METADATA, ShardedIndex

log = logging.getLogger(__name__)

Rankings = list[list[str]]


@dataclass(frozen=True)
class QuerySet:
    texts: list[str]
    relevance: list[Relevance]  # per query: item id -> gain
    exclude: list[set[str]]  # per query: items never counted in its ranking (the anchor of a co-liked pair)
    kinds: list[str]  # per query: the pair kind it came from (review, co_liked, synthetic, ...)

    def rankings(self, ranked: Rankings, k: int) -> Rankings:
        """`ranked` (fetched with `fetch_k(k)`) without each query's excluded items, cut to k."""
        return [[item for item in row if item not in skip][:k] for row, skip in zip(ranked, self.exclude)]

    def fetch_k(self, k: int) -> int:
        return k + max((len(skip) for skip in self.exclude), default=0)

    def of_kind(self, kind: str) -> tuple[QuerySet, list[int]]:
        """The queries of one kind, and their positions in this set."""
        rows = [i for i, own in enumerate(self.kinds) if own == kind]
        return QuerySet(*([values[i] for i in rows] for values in
                          (self.texts, self.relevance, self.exclude, self.kinds))), rows


def hard_queries(pairs: pa.Table, limit: int, seed: int) -> QuerySet:
    """One query per distinct query text (its relevant items: every pair with that text), seeded sample.

    A co-liked pair's query_id is "<anchor>><positive>": the anchor is the item the query stands for,
    so retrieving it answers nothing ("more like this" excludes the item itself).
    """
    relevant: dict[str, dict[str, float]] = {}
    exclude: dict[str, set[str]] = {}
    kind: dict[str, str] = {}
    for row in pairs.select(["query_id", "query", "item_id", "kind"]).to_pylist():
        relevant.setdefault(row["query"], {})[row["item_id"]] = 1.0
        kind.setdefault(row["query"], row["kind"])
        anchors = exclude.setdefault(row["query"], set())
        if row["kind"] == "co_liked":
            anchors.add(row["query_id"].split(">", 1)[0])
    texts = sorted(relevant)
    if limit < len(texts):
        texts = [texts[i] for i in sorted(np.random.default_rng(seed).choice(len(texts), limit, replace=False))]
    return QuerySet(texts, [relevant[t] for t in texts], [exclude[t] - set(relevant[t]) for t in texts],
                    [kind[t] for t in texts])


def exact_rankings(doc_vectors: np.ndarray, doc_ids: Sequence[str], query_vectors: np.ndarray, k: int) -> Rankings:
    """Top-k documents by inner product (cosine: vectors are L2-normalised), scoring every document."""
    flat = faiss.IndexFlatIP(doc_vectors.shape[1])
    flat.add(np.ascontiguousarray(doc_vectors, dtype=np.float32))
    _, rows = flat.search(np.ascontiguousarray(query_vectors, dtype=np.float32), min(k, len(doc_ids)))
    return [[doc_ids[r] for r in row if r >= 0] for row in rows.tolist()]


def bm25_rankings(documents: Sequence[str], doc_ids: Sequence[str], queries: Sequence[str], k: int) -> Rankings:
    """BM25 top-k; a document sharing no term with the query is not retrieved."""
    result = build_bm25(documents).retrieve(tokenize(queries), k=min(k, len(doc_ids)), show_progress=False)
    return [[doc_ids[d] for d, s in zip(docs, scores) if s > 0]
            for docs, scores in zip(result.documents.tolist(), result.scores.tolist())]


def sentence_transformer_vectors(folder: Path, texts: Sequence[Sequence[str]], batch_size: int) -> list[np.ndarray]:
    """L2-normalised embeddings of each list of `texts` with one load of the model in `folder`."""
    from sentence_transformers import SentenceTransformer  # heavy: only the catalog path needs torch

    model = SentenceTransformer(str(folder), device="cpu")
    return [model.encode(list(part), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=None).astype(np.float32) for part in texts]


def score_systems(rankings: dict[str, Rankings], queries: QuerySet, names: Sequence[str], resamples: int,
                  seed: int, confidence: float, reference: str) -> dict[str, Any]:
    """Metric means and CIs per system, and the paired difference reference minus every other system."""
    if reference not in rankings:
        raise ValueError(f"reference system {reference!r} is not among {sorted(rankings)}")
    scores = {system: per_query(ranked, queries.relevance, names) for system, ranked in rankings.items()}
    weights = resample_weights(len(queries.texts), resamples, seed)
    out: dict[str, Any] = {}
    for system, per_metric in scores.items():
        out[system] = {}
        for name, values in per_metric.items():
            out[system].update(flat_interval(name, interval(values, weights, confidence)))
    out[f"paired_vs_{reference}"] = {
        system: {k: v for name in names
                 for k, v in flat_interval(name, paired_difference(scores[reference][name], scores[system][name],
                                                                   weights, confidence)).items()}
        for system in scores if system != reference}
    return out


def scores_by_kind(rankings: dict[str, Rankings], queries: QuerySet, params: dict[str, Any]) -> dict[str, Any]:
    """The ablation again on each kind of query alone (a mixed test set can hide a weak or strong kind)."""
    out = {}
    for kind in sorted(set(queries.kinds)):
        subset, rows = queries.of_kind(kind)
        ranked = {system: [rankings[system][i] for i in rows] for system in rankings}
        out[kind] = {"queries": len(rows)} | score_systems(ranked, subset, params["metrics"], **bootstrap_params(params))
    return out


def flat_interval(name: str, found: Interval) -> dict[str, float]:
    """{"recall@10": mean, "recall@10_ci_low": ..., "recall@10_ci_high": ...}: flat numbers for DVC."""
    return {name: found.mean, f"{name}_ci_low": found.low, f"{name}_ci_high": found.high}


def recall_curves(rankings: dict[str, Rankings], queries: QuerySet, ks: Sequence[int]) -> dict[str, list[float]]:
    names = [f"recall@{k}" for k in ks]
    return {system: [float(v.mean()) for v in per_query(ranked, queries.relevance, names).values()]
            for system, ranked in rankings.items()}


def relevant_cosine(query_vectors: np.ndarray, doc_vectors: np.ndarray, doc_row: dict[str, int],
                    queries: QuerySet, seed: int) -> dict[str, float]:
    """Mean cosine of relevant (query, item) pairs, and of as many random pairs for scale."""
    q_rows, d_rows = zip(*[(q, doc_row[item]) for q, rel in enumerate(queries.relevance) for item in rel])
    relevant = np.einsum("ij,ij->i", query_vectors[list(q_rows)], doc_vectors[list(d_rows)])
    random_docs = np.random.default_rng(seed).integers(len(doc_vectors), size=len(q_rows))
    random = np.einsum("ij,ij->i", query_vectors[list(q_rows)], doc_vectors[random_docs])
    return {"relevant": float(relevant.mean()), "random": float(random.mean()), "pairs": len(q_rows)}


def latencies_ms(encoder: Encoder, index: ShardedIndex, texts: Sequence[str], k: int) -> dict[str, np.ndarray]:
    """Batch-1 latency of the shipped path, one thread: encode (INT8 ONNX) then sharded HNSW search."""
    faiss.omp_set_num_threads(1)
    encode, search = np.empty(len(texts)), np.empty(len(texts))
    for i, text in enumerate(texts):
        start = time.perf_counter()
        vector = encoder.encode([text])
        middle = time.perf_counter()
        index.search(vector, k)
        encode[i], search[i] = middle - start, time.perf_counter() - middle
    return {"encode": encode * 1e3, "search": search * 1e3, "total": (encode + search) * 1e3}


def latency_summary(ms: dict[str, np.ndarray]) -> dict[str, float]:
    return {f"{part}_p{p}": float(np.percentile(values, p)) for part, values in ms.items() for p in (50, 95, 99)}


def evaluate_catalog(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    documents = conform(pq.read_table(args.documents), DOCUMENTS, str(args.documents))
    doc_ids = documents.column("item_id").to_pylist()
    texts = documents.column("document").to_pylist()
    queries = hard_queries(conform(pq.read_table(args.pairs), PAIRS, str(args.pairs)),
                           int(params["max_queries"]), int(params["seed"]))
    doc_row = {item: row for row, item in enumerate(doc_ids)}
    unknown = sorted({item for rel in queries.relevance for item in rel} - set(doc_row))
    if unknown:
        raise ValueError(f"{args.pairs}: {len(unknown)} relevant item(s) have no document, e.g. {unknown[:5]}")
    k, batch = max_k(params), int(params["batch_size"])
    fetch = queries.fetch_k(k)
    log.info("%d queries over %d documents", len(queries.texts), len(doc_ids))
    encoder = Encoder.load(args.encoder, "int8")
    int8_queries = encoder.encode(queries.texts, batch_size=batch)
    index = ShardedIndex.open(args.index)
    rankings: dict[str, Rankings] = {"bm25": bm25_rankings(texts, doc_ids, queries.texts, fetch)}
    cosine = {}
    for system, folder in (("zero_shot", args.base_model), ("fp32", args.finetuned)):
        doc_vectors, query_vectors = sentence_transformer_vectors(folder, [texts, queries.texts], batch)
        rankings[system] = exact_rankings(doc_vectors, doc_ids, query_vectors, fetch)
        cosine[system] = relevant_cosine(query_vectors, doc_vectors, doc_row, queries, int(params["seed"]))
    embeddings = np.load(args.embeddings, mmap_mode="r", allow_pickle=False)
    rankings["int8_exact"] = exact_rankings(embeddings, doc_ids, int8_queries, fetch)
    rankings["int8_hnsw"] = index.item_ids(index.search(int8_queries, fetch))
    rankings = {system: queries.rankings(ranked, k) for system, ranked in rankings.items()}
    ann = ann_recall(index.search(int8_queries, 10).scores, index.search(int8_queries, 10, exact=True).scores)
    metrics = score_systems(rankings, queries, params["metrics"], **bootstrap_params(params))
    if len(set(queries.kinds)) > 1:
        metrics["by_kind"] = scores_by_kind(rankings, queries, params)
    latency = latencies_ms(Encoder.load(args.encoder, "int8", threads=1), index,
                           queries.texts[:int(params["latency_queries"])], 10)
    return finish(args.out, metrics, rankings, queries, params, latency, cosine,
                  {"documents": len(doc_ids), "ef_search": index.manifest.ef_search, "shards": len(index.shards),
                   "hnsw_recall_at_10_vs_exact": ann})


def evaluate_beir(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    """Embed, index (with efSearch tuning) and search a BEIR dataset exactly as a catalog is."""
    data = load_beir(args.beir, args.split)
    settings = IndexSettings.from_params(params["beir"], f"{args.params}: evaluate.beir")
    encoder = beir_encoder(args)
    k, batch = max_k(params), int(params["batch_size"])
    queries = QuerySet(data.queries, data.qrels, [set() for _ in data.queries], ["beir"] * len(data.queries))
    with tempfile.TemporaryDirectory(prefix="semrec-beir-") as tmp:
        work = Path(tmp)
        write_parquet(pa.table({"item_id": data.doc_ids, "document": data.documents}, schema=DOCUMENTS),
                      work / "documents.parquet")
        n = len(data.doc_ids)
        write_parquet(pa.table({"item_id": data.doc_ids, "title": data.titles, "creator": [None] * n,
                                "categories": [None] * n, "year": [None] * n, "price": [None] * n,
                                "url": [None] * n, "attributes": [None] * n}, schema=METADATA), work / "items.parquet")
        embed_to_npy(encoder, data.documents, work / "embeddings.npy", batch)
        query_vectors = encoder.encode(data.queries, batch_size=batch)
        index_report = build_index(work / "index", work / "documents.parquet", work / "embeddings.npy",
                                   work / "items.parquet", {"queries": query_vectors}, settings)
        index = ShardedIndex.open(work / "index")
        embeddings = np.load(work / "embeddings.npy", mmap_mode="r", allow_pickle=False)
        rankings = {"bm25": bm25_rankings(data.documents, data.doc_ids, data.queries, k),
                    "int8_exact": exact_rankings(embeddings, data.doc_ids, query_vectors, k),
                    "int8_hnsw": index.item_ids(index.search(query_vectors, k))}
        metrics = score_systems(rankings, queries, params["metrics"],
                                **bootstrap_params(params, reference=params["beir"]["reference"]))
        latency = latencies_ms(beir_encoder(args, threads=1), index, data.queries[:int(params["latency_queries"])], 10)
        ann = ann_recall(index.search(query_vectors, 10).scores, index.search(query_vectors, 10, exact=True).scores)
        context = {"dataset": str(args.beir), "documents": n, "ef_search": index_report["ef_search"],
                   "hnsw_recall_at_10_vs_exact": ann,
                   "shards": settings.shards, "encoder": str(args.snapshot or args.encoder)}
        return finish(args.out, metrics, rankings, queries, params, latency, {}, context)


def beir_encoder(args: argparse.Namespace, threads: int | None = None) -> Encoder:
    """The INT8 encoder of --encoder, or the one inside the live snapshot of --catalog under --snapshot."""
    if not args.snapshot:
        return Encoder.load(args.encoder, "int8", threads)
    from serving.reader import Reader

    return Reader.open(args.snapshot, args.catalog, threads=threads).snapshot.encoder


def check_params(params: dict[str, Any], source: str) -> None:
    """Fail before any model loads: unknown metric names or reference systems."""
    for name in params["metrics"]:
        parse_metric(name)
    for where, reference in (("reference", params["reference"]), ("beir.reference", params["beir"]["reference"])):
        if reference not in SYSTEMS:
            raise ValueError(f"{source}: evaluate.{where} must be one of {list(SYSTEMS)}, not {reference!r}")


def max_k(params: dict[str, Any]) -> int:
    return max([parse_metric(name)[1] for name in params["metrics"]] + [int(k) for k in params["curve_ks"]])


def bootstrap_params(params: dict[str, Any], reference: str | None = None) -> dict[str, Any]:
    boot = params["bootstrap"]
    return {"resamples": int(boot["resamples"]), "seed": int(boot["seed"]), "confidence": float(boot["confidence"]),
            "reference": reference or params["reference"]}


def finish(out: Path, metrics: dict[str, Any], rankings: dict[str, Rankings], queries: QuerySet,
           params: dict[str, Any], latency: dict[str, np.ndarray], cosine: dict[str, Any],
           context: dict[str, Any]) -> dict[str, Any]:
    """Write metrics.json, report.md and the plots into `out`."""
    ks = [int(k) for k in params["curve_ks"]]
    curves = recall_curves(rankings, queries, ks)
    metrics |= {"queries": len(queries.texts), "relevant_pairs": sum(len(r) for r in queries.relevance),
                "latency_ms": latency_summary(latency), **context}
    if cosine:
        metrics["mean_cosine"] = cosine
    plot_recall_curves(curves, ks, out / "recall_curves.png")
    plot_latency(latency["total"], out / "latency.png")
    write_json(metrics, out / "metrics.json")
    write_text(markdown(metrics, list(rankings), params["metrics"], bootstrap_params(params)["confidence"]),
               out / "report.md")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for metrics.json, report.md, plots")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    catalog = parser.add_argument_group("catalog evaluation")
    catalog.add_argument("--documents", type=Path, help="pairs stage documents.parquet")
    catalog.add_argument("--pairs", type=Path, help="the hard test split (test_hard.parquet)")
    catalog.add_argument("--embeddings", type=Path, help="embed stage .npy")
    catalog.add_argument("--index", type=Path, help="index stage folder")
    catalog.add_argument("--base-model", type=Path, help="zero-shot sentence-transformers folder")
    catalog.add_argument("--finetuned", type=Path, help="fine-tuned sentence-transformers folder")
    catalog.add_argument("--encoder", type=Path, help="ONNX encoder folder (quantize stage)")
    beir = parser.add_argument_group("BEIR evaluation")
    beir.add_argument("--beir", type=Path, help="BEIR-layout dataset folder")
    beir.add_argument("--split", default="test", help="qrels/<split>.tsv")
    beir.add_argument("--snapshot", help="published store URL: use its snapshot's encoder instead of --encoder")
    beir.add_argument("--catalog", help="the catalog of --snapshot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_section("evaluate", args.params)
    check_params(params, str(args.params))
    if args.beir:
        if not (args.encoder or args.snapshot):
            parser.error("--beir needs --encoder or --snapshot")
        if args.snapshot and not args.catalog:
            parser.error("--snapshot needs --catalog")
        metrics = evaluate_beir(args, params)
    else:
        needed = ["documents", "pairs", "embeddings", "index", "base_model", "finetuned", "encoder"]
        missing = [f"--{name.replace('_', '-')}" for name in needed if getattr(args, name) is None]
        if missing:
            parser.error(f"catalog evaluation needs {' '.join(missing)} (or --beir)")
        metrics = evaluate_catalog(args, params)
    log.info("%s", {system: round(metrics[system]["recall@10"], 4) for system in SYSTEMS if system in metrics})
    return 0
