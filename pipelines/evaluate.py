"""evaluate stage: every system on every held-out query set, with paired bootstrap CIs against what ships.

Systems, all ranking the same documents for the same queries:
  popularity     (with --popularity) the most liked items, the same list for every query: reads no text
  bm25           BM25 (serving.bm25) over the documents
  bm25_prior     (with --popularity) BM25 blended with the popularity prior at its best weight on validation
                 (fusion.json `bm25_prior`): the lexical baseline given what the shipped system is given
  zero_shot      the untouched base model, FP32, exact search
  finetuned      the train stage's best checkpoint, FP32, exact search (absent when train.enabled is false)
  selected       the select stage's choice, FP32, exact search (the same rankings as zero_shot or finetuned
                 when it is one of them)
  shipped_dense  the selected encoder as shipped: INT8 ONNX + sharded HNSW at its tuned efSearch
  shipped        what `Reader.search` answers by default: shipped_dense fused with BM25 (and the prior) as the
                 fusion stage chose
Every metric is a mean with a percentile bootstrap CI over queries; `paired_vs_shipped` holds shipped minus
each system with a paired CI (same resamples: a CI excluding 0 is a significant difference). A set mixing
query kinds is also scored kind by kind. Each (set, system) ranking is written as a TREC run beside the
set's qrels (`runs/`), so trec_eval or ranx can re-check every number.

    semrec evaluate --documents D --test test=T --test test_hard=H --base-model B --finetuned F --selected S \
        --index I --encoder E --fusion reports/fashion/fusion.json --select reports/fashion/select.json \
        --popularity data/fashion/pairs/popularity.parquet --out reports/fashion
    semrec evaluate --beir DIR --snapshot published --catalog movies --out reports/beir/NAME \
        [--base-model B --finetuned F --selected S]
    semrec evaluate --beir DIR --encoder models/movies/onnx --fusion reports/movies/fusion.json --out ...

A BEIR-layout dataset (pipelines/beir.py) is embedded, indexed (the snapshot's HNSW settings, efSearch
tuned as the index stage does) and searched through the same reader code, with BM25 built over its corpus:
`--snapshot` scores exactly what that snapshot serves (its encoder, fusion method and weight); a BEIR corpus
has no popularity, so the prior is off there.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.beir import load_beir
from pipelines.common.atomic import atomic_dir, write_json, write_parquet
from pipelines.common.bootstrap import Interval, interval, paired_difference, resample_weights
from pipelines.common.finetuned import is_trained
from pipelines.common.metrics import parse_metric, per_query
from pipelines.common.params import load_section
from pipelines.common.queries import QuerySet, Rankings, query_set
from pipelines.common.schemas import DOCUMENTS, PAIRS, conform
from pipelines.common.shipped import (bm25_in_index_order, bm25_prior_rankings, popularity_rankings,
                                      positives_in_index_order, rankings)
from pipelines.embed import embed_to_npy
from pipelines.eval_report import markdown, plot_latency, plot_recall_curves, write_text
from pipelines.index import IndexSettings, ann_recall, build_index
from serving.bm25 import build_bm25, tokenize
from serving.encoder import Encoder
from serving.fusion import Fusion
from serving.shards import METADATA, ShardedIndex
from serving.snapshot import Snapshot

log = logging.getLogger(__name__)

REFERENCE = "shipped"
MODEL_SYSTEMS = ("zero_shot", "finetuned", "selected")  # sentence-transformers folders, FP32, exact search


@dataclass(frozen=True)
class Corpus:
    ids: list[str]
    texts: list[str]


def exact_rankings(doc_vectors: np.ndarray, doc_ids: Sequence[str], query_vectors: np.ndarray, k: int) -> Rankings:
    """Top-k documents by inner product (cosine: vectors are L2-normalised), scoring every document."""
    flat = faiss.IndexFlatIP(doc_vectors.shape[1])
    flat.add(np.ascontiguousarray(doc_vectors, dtype=np.float32))
    _, rows = flat.search(np.ascontiguousarray(query_vectors, dtype=np.float32), min(k, len(doc_ids)))
    return [[doc_ids[r] for r in row if r >= 0] for row in rows.tolist()]


def bm25_rankings(corpus: Corpus, queries: Sequence[str], k: int) -> Rankings:
    """BM25 top-k; a document sharing no term with the query is not retrieved."""
    result = build_bm25(corpus.texts).retrieve(tokenize(queries), k=min(k, len(corpus.ids)), show_progress=False)
    return [[corpus.ids[d] for d, s in zip(docs, scores) if s > 0]
            for docs, scores in zip(result.documents.tolist(), result.scores.tolist())]


def model_rankings(folders: Mapping[str, Path], corpus: Corpus, sets: Mapping[str, QuerySet], k: int,
                   batch_size: int, seed: int) -> tuple[dict[str, dict[str, Rankings]], dict[str, Any]]:
    """{system: {set: rankings}} of each sentence-transformers folder (one load, one corpus encoding each), and
    the mean cosine of relevant vs random (query, item) pairs per system on the first set."""
    from sentence_transformers import SentenceTransformer  # heavy: only the model systems need torch

    out: dict[str, dict[str, Rankings]] = {}
    cosine: dict[str, Any] = {}
    row_of = {item: row for row, item in enumerate(corpus.ids)}
    for system, folder in folders.items():
        model = SentenceTransformer(str(folder), device="cpu")
        doc_vectors = st_vectors(model, corpus.texts, batch_size)
        out[system] = {}
        for name, queries in sets.items():
            query_vectors = st_vectors(model, queries.texts, batch_size)
            out[system][name] = exact_rankings(doc_vectors, corpus.ids, query_vectors, queries.fetch_k(k))
            if system not in cosine:
                cosine[system] = relevant_cosine(query_vectors, doc_vectors, row_of, queries, seed)
    return out, cosine


def st_vectors(model: Any, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """L2-normalised float32 embeddings of `texts` by a sentence-transformers model."""
    return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=None).astype(np.float32)


def relevant_cosine(query_vectors: np.ndarray, doc_vectors: np.ndarray, doc_row: dict[str, int],
                    queries: QuerySet, seed: int) -> dict[str, float]:
    """Mean cosine of relevant (query, item) pairs, and of as many random pairs for scale."""
    q_rows, d_rows = zip(*[(q, doc_row[item]) for q, rel in enumerate(queries.relevance) for item in rel])
    relevant = np.einsum("ij,ij->i", query_vectors[list(q_rows)], doc_vectors[list(d_rows)])
    random_docs = np.random.default_rng(seed).integers(len(doc_vectors), size=len(q_rows))
    random = np.einsum("ij,ij->i", query_vectors[list(q_rows)], doc_vectors[random_docs])
    return {"relevant": float(relevant.mean()), "random": float(random.mean()), "pairs": len(q_rows)}


def prior_rankings(snapshot: Snapshot, sets: Mapping[str, QuerySet], bm25_prior_weight: float,
                   k: int) -> dict[str, dict[str, Rankings]]:
    """{"popularity": {set: rankings}, "bm25_prior": {...}} of a snapshot with a prior."""
    return {"popularity": {name: popularity_rankings(snapshot, len(q.texts), q.fetch_k(k)) for name, q in sets.items()},
            "bm25_prior": {name: bm25_prior_rankings(snapshot, q.texts, bm25_prior_weight, q.fetch_k(k))
                           for name, q in sets.items()}}


def shipped_rankings(snapshot: Snapshot, sets: Mapping[str, QuerySet], k: int) -> dict[str, dict[str, Rankings]]:
    """{"shipped_dense": {set: rankings}, "shipped": {...}} through the reader's own query path."""
    dense, fused = Fusion("dense"), snapshot.fusion
    out: dict[str, dict[str, Rankings]] = {"shipped_dense": {}, REFERENCE: {}}
    for name, queries in sets.items():
        ranked = rankings(snapshot, queries.texts, [dense, fused], queries.fetch_k(k))
        out["shipped_dense"][name], out[REFERENCE][name] = ranked[dense], ranked[fused]
    return out


def flat_interval(name: str, found: Interval) -> dict[str, float]:
    """{"recall@10": mean, "recall@10_ci_low": ..., "recall@10_ci_high": ...}: flat numbers for DVC."""
    return {name: found.mean, f"{name}_ci_low": found.low, f"{name}_ci_high": found.high}


def score_systems(ranked: Mapping[str, Rankings], queries: QuerySet, names: Sequence[str],
                  boot: Mapping[str, Any]) -> dict[str, Any]:
    """Means and CIs per system, and shipped minus every other system (paired, same resamples)."""
    scores = {system: per_query(r, queries.relevance, names) for system, r in ranked.items()}
    weights = resample_weights(len(queries.texts), int(boot["resamples"]), int(boot["seed"]))
    confidence = float(boot["confidence"])
    out: dict[str, Any] = {system: {k: v for name in names for k, v in
                                    flat_interval(name, interval(values[name], weights, confidence)).items()}
                           for system, values in scores.items()}
    out[f"paired_vs_{REFERENCE}"] = {
        system: {k: v for name in names for k, v in flat_interval(name, paired_difference(
            scores[REFERENCE][name], scores[system][name], weights, confidence)).items()}
        for system in scores if system != REFERENCE}
    return out


def score_set(ranked: Mapping[str, Rankings], queries: QuerySet, params: Mapping[str, Any]) -> dict[str, Any]:
    """One query set: every system, paired CIs, and the same again for each query kind when it mixes kinds."""
    names = params["metrics"]
    out = {"queries": len(queries.texts), "relevant_pairs": sum(len(r) for r in queries.relevance)}
    out |= score_systems(ranked, queries, names, params["bootstrap"])
    kinds = sorted(set(queries.kinds))
    if len(kinds) > 1:
        out["by_kind"] = {}
        for kind in kinds:
            subset, rows = queries.of_kind(kind)
            own = {system: [r[i] for i in rows] for system, r in ranked.items()}
            out["by_kind"][kind] = {"queries": len(rows)} | score_systems(own, subset, names, params["bootstrap"])
    return out


def recall_curves(ranked: Mapping[str, Rankings], queries: QuerySet, ks: Sequence[int]) -> dict[str, list[float]]:
    names = [f"recall@{k}" for k in ks]
    return {system: [float(v.mean()) for v in per_query(r, queries.relevance, names).values()]
            for system, r in ranked.items()}


def write_runs(folder: Path, name: str, queries: QuerySet, ranked: Mapping[str, Rankings]) -> None:
    """`<name>.qrels` and one `<name>.<system>.trec` run per system (TREC format; query i is q<i>)."""
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


def latencies_ms(snapshot: Snapshot, texts: Sequence[str], k: int) -> dict[str, np.ndarray]:
    """Batch-1 latency of the shipped path, one thread: encode, then the default search (dense + BM25 + fusion)."""
    faiss.omp_set_num_threads(1)
    encode, total = np.empty(len(texts)), np.empty(len(texts))
    for i, text in enumerate(texts):
        start = time.perf_counter()
        snapshot.encoder.encode([text])
        middle = time.perf_counter()
        snapshot.search(text, k)
        encode[i], total[i] = middle - start, time.perf_counter() - middle
    return {"encode": encode * 1e3, "search": (total - encode) * 1e3, "total": total * 1e3}


def latency_summary(ms: Mapping[str, np.ndarray]) -> dict[str, float]:
    return {f"{part}_p{p}": float(np.percentile(values, p)) for part, values in ms.items() for p in (50, 95, 99)}


def max_k(params: Mapping[str, Any]) -> int:
    return max([parse_metric(name)[1] for name in params["metrics"]] + [int(k) for k in params["curve_ks"]])


def evaluate(corpus: Corpus, sets: Mapping[str, QuerySet], snapshot: Snapshot, folders: Mapping[str, Path],
             aliases: Mapping[str, str], params: Mapping[str, Any], out: Path,
             context: dict[str, Any], bm25_prior_weight: float | None = None) -> dict[str, Any]:
    """Rank every set with every system, score, and write metrics.json, report.md, plots and runs into `out`.

    `snapshot` is the shipped query path with a one-thread encoder (its batch-1 latency is measured too);
    `aliases` maps a model system to another whose rankings it shares (selected -> finetuned); with
    `bm25_prior_weight` (the snapshot has a prior) the popularity and bm25_prior baselines are scored too."""
    k = max_k(params)
    log.info("%s over %d documents", {name: len(q.texts) for name, q in sets.items()}, len(corpus.ids))
    ranked: dict[str, dict[str, Rankings]] = {"bm25": {n: bm25_rankings(corpus, q.texts, q.fetch_k(k))
                                                       for n, q in sets.items()}}
    by_model, cosine = model_rankings(folders, corpus, sets, k, int(params["batch_size"]), int(params["seed"]))
    ranked |= by_model
    ranked |= {system: ranked[target] for system, target in aliases.items()}
    if bm25_prior_weight is not None:
        ranked |= prior_rankings(snapshot, sets, bm25_prior_weight, k)
    ranked |= shipped_rankings(snapshot, sets, k)
    order = [s for s in ("popularity", "bm25", "bm25_prior", *MODEL_SYSTEMS, "shipped_dense", REFERENCE) if s in ranked]
    metrics: dict[str, Any] = {}
    with atomic_dir(out / "runs") as runs:
        for name, queries in sets.items():
            own = {system: queries.rankings(ranked[system][name], k) for system in order}
            metrics[name] = score_set(own, queries, params)
            write_runs(runs, name, queries, own)
    first = next(iter(sets))
    first_ranked = {system: sets[first].rankings(ranked[system][first], k) for system in order}
    vectors = snapshot.encoder.encode(sets[first].texts)
    latency = latencies_ms(snapshot, sets[first].texts[:int(params["latency_queries"])], 10)
    context |= {"documents": len(corpus.ids), "ef_search": snapshot.index.manifest.ef_search,
                "shards": len(snapshot.index.shards), "fusion": snapshot.fusion.name(),
                "hnsw_recall_at_10_vs_exact": ann_recall(snapshot.index.search(vectors, 10).scores,
                                                         snapshot.index.search(vectors, 10, exact=True).scores)}
    metrics |= {"latency_ms": latency_summary(latency), **context}
    if cosine:
        metrics["mean_cosine"] = cosine
    ks = [int(k) for k in params["curve_ks"]]
    plot_recall_curves(recall_curves(first_ranked, sets[first], ks), ks, out / "recall_curves.png", first)
    plot_latency(latency["total"], out / "latency.png")
    warnings = wide_intervals(metrics, list(sets), float(params["warn_ci_half_width"]))
    if warnings:
        metrics["warnings"] = warnings
    write_json(metrics, out / "metrics.json")
    write_text(markdown(metrics, list(sets), order, params["metrics"], float(params["bootstrap"]["confidence"]))
               + "".join(f"\n**Warning:** {warning}\n" for warning in warnings), out / "report.md")
    return metrics


def wide_intervals(metrics: Mapping[str, Any], sets: Sequence[str], half_width: float) -> list[str]:
    """A warning per set whose shipped Recall@10 CI is wider than +-`half_width`: too few queries to tell systems
    apart (a small catalog: raise pairs.min_test_queries)."""
    warnings = []
    for name in sets:
        low, high = metrics[name][REFERENCE]["recall@10_ci_low"], metrics[name][REFERENCE]["recall@10_ci_high"]
        if (high - low) / 2 > half_width:
            warnings.append(f"{name}: the shipped Recall@10 CI [{low:.3f}, {high:.3f}] is wider than +-{half_width:g} "
                            f"({metrics[name]['queries']} queries): add queries (pairs.min_test_queries)")
    return warnings


def read_queries(path: Path, params: Mapping[str, Any], corpus: Corpus) -> QuerySet:
    queries = query_set(conform(pq.read_table(path), PAIRS, str(path)), int(params["max_queries"]), int(params["seed"]))
    unknown = sorted({item for rel in queries.relevance for item in rel} - set(corpus.ids))
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} relevant item(s) have no document, e.g. {unknown[:5]}")
    return queries


def model_folders(args: argparse.Namespace, chosen: str | None) -> tuple[dict[str, Path], dict[str, str]]:
    """The model systems asked for, and the aliases that spare encoding the selected model twice."""
    folders = {system: getattr(args, option) for system, option in
               (("zero_shot", "base_model"), ("finetuned", "finetuned"), ("selected", "selected"))
               if getattr(args, option) is not None and is_trained(getattr(args, option))}
    alias = {"base": "zero_shot", "finetuned": "finetuned"}.get(chosen or "")
    if "selected" in folders and alias in folders:
        del folders["selected"]
        return folders, {"selected": alias}
    return folders, {}


def evaluate_catalog(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    documents = conform(pq.read_table(args.documents), DOCUMENTS, str(args.documents))
    corpus = Corpus(documents["item_id"].to_pylist(), documents["document"].to_pylist())
    sets: dict[str, QuerySet] = {}
    same: dict[str, str] = {}
    for name, path in args.test:
        queries = read_queries(path, params, corpus)
        twin = next((other for other, known in sets.items() if known == queries), None)
        if twin:  # movies: no hard form, so test_hard is test again; score it once
            same[name] = twin
        else:
            sets[name] = queries
    fusion_report = json.loads(args.fusion.read_text())
    if args.popularity and "bm25_prior" not in fusion_report:
        raise ValueError(f"{args.fusion}: no bm25_prior weight; rerun the fusion stage with --popularity")
    select_report = json.loads(args.select.read_text()) if args.select else {}
    index = ShardedIndex.open(args.index)
    positives = positives_in_index_order(index, args.popularity) if args.popularity else None
    snapshot = Snapshot(index, Encoder.load(args.encoder, "int8", threads=1),
                        bm25_in_index_order(index, dict(zip(corpus.ids, corpus.texts)), str(args.index)),
                        Fusion(**fusion_report["fusion"]), positives=positives)
    folders, aliases = model_folders(args, select_report.get("chosen"))
    context: dict[str, Any] = {"fusion_validation": {k: fusion_report[k] for k in
                                                     ("metric", "validation_queries", "validation", "bm25_prior")
                                                     if k in fusion_report}}
    if same:
        context["same_queries_as"] = same
    if select_report:
        context["select"] = {k: select_report[k] for k in ("chosen", "base_only", "metric", "validation_queries",
                                                            "candidates", "guard") if k in select_report}
    bm25_prior = fusion_report["bm25_prior"]["prior_weight"] if args.popularity else None
    return evaluate(corpus, sets, snapshot, folders, aliases, params, args.out, context, bm25_prior)


def evaluate_beir(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    """A BEIR dataset through the shipped query path: --snapshot's encoder and fusion, or --encoder (+ --fusion)."""
    data = load_beir(args.beir, args.split)
    settings = IndexSettings.from_params(params["beir"], f"{args.params}: evaluate.beir")
    if args.snapshot:
        from serving.reader import Reader

        served = Reader.open(args.snapshot, args.catalog, threads=1).snapshot
        encoder, fusion = served.encoder, served.fusion
        settings = replace(settings, m=served.index.manifest.m, ef_construction=served.index.manifest.ef_construction)
        source = f"{args.snapshot}/{args.catalog}/{served.snapshot_id}"
    else:
        encoder = Encoder.load(args.encoder, "int8", threads=1)
        fusion = Fusion(**json.loads(args.fusion.read_text())["fusion"]) if args.fusion else Fusion("dense")
        source = str(args.encoder)
    corpus = Corpus(data.doc_ids, data.documents)
    sets = {"beir": QuerySet(data.queries, data.qrels, [set() for _ in data.queries], ["beir"] * len(data.queries))}
    batch = int(params["batch_size"])
    with tempfile.TemporaryDirectory(prefix="semrec-beir-") as tmp:
        work = Path(tmp)
        write_parquet(pa.table({"item_id": data.doc_ids, "document": data.documents}, schema=DOCUMENTS),
                      work / "documents.parquet")
        n = len(data.doc_ids)
        write_parquet(pa.table({"item_id": data.doc_ids, "title": data.titles, **{
            name: [None] * n for name in METADATA.names if name not in ("item_id", "title")}}, schema=METADATA),
            work / "items.parquet")
        embed_to_npy(encoder, data.documents, work / "embeddings.npy", batch)
        index_report = build_index(work / "index", work / "documents.parquet", work / "embeddings.npy",
                                   work / "items.parquet", {"queries": encoder.encode(data.queries, batch_size=batch)},
                                   settings)
        index = ShardedIndex.open(work / "index")
        snapshot = Snapshot(index, encoder, bm25_in_index_order(index, dict(zip(corpus.ids, corpus.texts)), "beir"),
                            fusion)
        folders, aliases = model_folders(args, None)
        context = {"dataset": str(args.beir), "encoder": source, "index_build": index_report}
        return evaluate(corpus, sets, snapshot, folders, aliases, params, args.out, context)


def named_path(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (NAME a word such as test_hard), not {value!r}")
    return name, Path(path)


def check_params(params: Mapping[str, Any]) -> None:
    """Fail before any model loads on unknown metric names."""
    for name in params["metrics"]:
        parse_metric(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for metrics.json, report.md, plots, runs/")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    models = parser.add_argument_group("model systems (FP32 sentence-transformers folders, exact search)")
    models.add_argument("--base-model", type=Path, help="the untouched base model (zero_shot)")
    models.add_argument("--finetuned", type=Path, help="the train stage's output (finetuned)")
    models.add_argument("--selected", type=Path, help="the select stage's output (selected)")
    catalog = parser.add_argument_group("catalog evaluation")
    catalog.add_argument("--documents", type=Path, help="pairs stage documents.parquet")
    catalog.add_argument("--test", type=named_path, action="append", metavar="NAME=PAIRS",
                         help="a held-out pairs file and its name in the report (repeat: test=..., test_hard=...)")
    catalog.add_argument("--index", type=Path, help="index stage folder")
    catalog.add_argument("--encoder", type=Path, help="ONNX encoder folder (quantize stage)")
    catalog.add_argument("--fusion", type=Path, help="the fusion stage's fusion.json (the shipped fusion)")
    catalog.add_argument("--select", type=Path, help="the select stage's select.json (candidates and choice)")
    catalog.add_argument("--popularity", type=Path,
                         help="the pairs stage's popularity.parquet: the shipped prior, and the popularity baselines")
    beir = parser.add_argument_group("BEIR evaluation")
    beir.add_argument("--beir", type=Path, help="BEIR-layout dataset folder")
    beir.add_argument("--split", default="test", help="qrels/<split>.tsv")
    beir.add_argument("--snapshot", help="published store URL: score what its --catalog snapshot serves")
    beir.add_argument("--catalog", help="the catalog of --snapshot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_section("evaluate", args.params)
    check_params(params)
    if args.beir:
        if not (args.encoder or args.snapshot):
            parser.error("--beir needs --snapshot URL --catalog C, or --encoder (and --fusion)")
        if args.snapshot and not args.catalog:
            parser.error("--snapshot needs --catalog")
        metrics = evaluate_beir(args, params)
        sets = ["beir"]
    else:
        needed = ["documents", "test", "index", "encoder", "fusion"]
        missing = [f"--{name.replace('_', '-')}" for name in needed if getattr(args, name) is None]
        if missing:
            parser.error(f"catalog evaluation needs {' '.join(missing)} (or --beir)")
        metrics = evaluate_catalog(args, params)
        sets = [name for name, _ in args.test if name not in metrics.get("same_queries_as", {})]
    for name in sets:
        log.info("%s: %s", name, {system: round(metrics[name][system]["recall@10"], 4) for system in metrics[name]
                                  if isinstance(metrics[name][system], dict) and "recall@10" in metrics[name][system]})
    return 0
