"""Build a catalog's sharded HNSW index (serving.shards format) and tune its efSearch.

Items go to shards by a stable hash of item_id; each shard is built by a task of its own on the
executor's workers (pipelines/common/executor.py: a local process pool, or a Dask cluster), which reads
its rows (vectors and metadata, written there by the driver) from the run's work folder and writes the
shard's files back to it; the driver moves them into the index folder.
efSearch is tuned, not fixed: the smallest value on the grid whose recall@k against exact search
reaches the target on held-out queries (the validation split, whole and cut short; never training
queries, which the fine-tuned encoder has learned to place near their items, nor test queries).
The index folder is written beside the target and swapped in only when complete.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipelines.common import executor as executors
from pipelines.common.atomic import atomic_dir, write_csv, write_json
from pipelines.common.params import load_section
from pipelines.common.schemas import DOCUMENTS, PAIRS, conform
from pipelines.common.workdir import WorkDir, run_folder
from serving.encoder import Encoder
from serving.shards import (
    METADATA,
    ShardedIndex,
    ShardEntry,
    conform_metadata,
    plan_shards,
    write_manifest,
    write_shard,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexSettings:
    shards: int
    workers: int
    m: int
    ef_construction: int
    recall_target: float
    ef_search_grid: tuple[int, ...]
    tune_k: int

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str) -> IndexSettings:
        settings = cls(shards=int(params["shards"]), workers=int(params["workers"]), m=int(params["m"]),
                       ef_construction=int(params["ef_construction"]),
                       recall_target=float(params["recall_target"]),
                       ef_search_grid=tuple(sorted(int(ef) for ef in params["ef_search_grid"])),
                       tune_k=int(params["tune_k"]))
        if min(settings.shards, settings.workers, settings.m, settings.ef_construction, settings.tune_k) < 1:
            raise ValueError(f"{source}: shards, workers, m, ef_construction and tune_k must be >= 1")
        if not 0 < settings.recall_target <= 1 or not settings.ef_search_grid or settings.ef_search_grid[0] < 1:
            raise ValueError(f"{source}: recall_target must be in (0, 1] and ef_search_grid positive")
        return settings


@dataclass(frozen=True)
class ShardJob:
    """What a task needs to build shard `shard` (everything picklable)."""

    work: WorkDir  # the shard's rows in (shard_inputs), its files out
    shard: int
    m: int
    ef_construction: int
    faiss_threads: int


def shard_inputs(shard: int) -> tuple[str, str]:
    """(vectors .npy, metadata Arrow) of shard `shard`'s rows in the work folder."""
    return f"rows-{shard:04d}.npy", f"rows-{shard:04d}.arrow"


def metadata_for(item_ids: list[str], items: pa.Table, source: str) -> pa.Table:
    """METADATA rows of `item_ids`, in that order, looked up in `items` (a table with its columns)."""
    position = {item: row for row, item in enumerate(items.column("item_id").to_pylist())}
    missing = [item for item in item_ids if item not in position]
    if missing:
        raise ValueError(f"{source}: {len(missing)} document item(s) have no item row, e.g. {missing[:5]}")
    return conform_metadata(items.take([position[item] for item in item_ids]), source)


def write_shard_inputs(work: WorkDir, documents: Path, embeddings: Path, items: Path, n_shards: int) -> None:
    """Each shard's vectors and metadata rows, in input order, into the work folder."""
    item_ids = pq.read_table(documents, columns=["item_id"]).column("item_id").to_pylist()
    metadata = metadata_for(item_ids, pq.read_table(items, columns=METADATA.names), str(items))
    vectors = np.load(embeddings, mmap_mode="r", allow_pickle=False)
    for shard, rows in enumerate(plan_shards(item_ids, n_shards)):
        vectors_name, metadata_name = shard_inputs(shard)
        work.write_npy(vectors_name, np.ascontiguousarray(vectors[rows]))
        work.write_arrow(metadata_name, [metadata.take(rows)])


def build_shard(job: ShardJob) -> ShardEntry:
    faiss.omp_set_num_threads(job.faiss_threads)
    vectors_name, metadata_name = shard_inputs(job.shard)
    vectors, metadata = job.work.read_npy(vectors_name), job.work.read_arrow(metadata_name)
    if job.work.local:
        entry = write_shard(job.work.path, job.shard, vectors, metadata, job.m, job.ef_construction)
    else:  # FAISS writes local files: build here, then copy them in
        with tempfile.TemporaryDirectory(prefix="semrec-shard-") as folder:
            entry = write_shard(folder, job.shard, vectors, metadata, job.m, job.ef_construction)
            for name in (entry.index, entry.metadata):
                job.work.put(os.path.join(folder, name), name)
    log.info("shard %d: %d items", job.shard, entry.count)
    return entry


def build_shards(folder: Path, documents: Path, embeddings: Path, items: Path, settings: IndexSettings,
                 executor: executors.ExecutorSettings) -> list[ShardEntry]:
    workers = min(settings.workers, settings.shards)
    with run_folder(executor.work_url, folder / ".work", "index") as work:
        write_shard_inputs(work, documents, embeddings, items, settings.shards)
        jobs = [ShardJob(work, shard, settings.m, settings.ef_construction, executors.task_threads(executor, workers))
                for shard in range(settings.shards)]
        with executors.open_executor(executor, workers) as pool:
            entries = list(tqdm(pool.map(build_shard, jobs), total=len(jobs), desc="index shards", unit="shard",
                                disable=None))
        for entry in entries:
            for name in (entry.index, entry.metadata):
                work.move_out(name, folder / name)
    return entries


def ann_recall(found_scores: np.ndarray, exact_scores: np.ndarray, tolerance: float = 1e-5) -> float:
    """Mean share of the exact top-k that the ANN top-k matched, per query ((n, k) score arrays).

    A hit counts when it scores at least the exact k-th score: an item tied with the k-th one is as
    good an answer (identical documents are common in catalogs), so ties do not read as misses.
    """
    kth = exact_scores[:, -1:] - tolerance
    wanted = np.isfinite(exact_scores).sum(axis=1)
    matched = np.minimum((found_scores >= kth).sum(axis=1), wanted)
    return float(np.mean(matched / np.maximum(wanted, 1)))


def recall_curve(index: ShardedIndex, query_sets: dict[str, np.ndarray],
                 settings: IndexSettings) -> list[dict[str, float]]:
    """ANN recall@tune_k against exact search and search time, for every efSearch of the grid.

    Each point holds the recall of every query set (`recall_at_10_<name>`) and, as `recall_at_10`,
    the lowest of them: efSearch must serve every kind of query, not their average.
    """
    key = f"recall_at_{settings.tune_k}"
    exact = {name: index.search(vectors, settings.tune_k, exact=True).scores for name, vectors in query_sets.items()}
    curve = []
    for ef in tqdm(settings.ef_search_grid, desc="tune efSearch", unit="ef", disable=None):
        tuned = index.with_ef_search(ef)
        point: dict[str, float] = {"ef_search": ef}
        start = time.perf_counter()
        for name, vectors in query_sets.items():
            point[f"{key}_{name}"] = ann_recall(tuned.search(vectors, settings.tune_k).scores, exact[name])
        point["ms_per_query"] = (time.perf_counter() - start) * 1e3 / sum(map(len, query_sets.values()))
        point[key] = min(point[f"{key}_{name}"] for name in query_sets)
        curve.append(point)
    return curve


def choose_ef_search(curve: list[dict[str, float]], key: str, target: float) -> int:
    """The smallest efSearch whose recall reaches `target`; the largest tried when none does."""
    reaching = [int(point["ef_search"]) for point in curve if point[key] >= target]
    return min(reaching) if reaching else max(int(point["ef_search"]) for point in curve)


def build_index(out: Path, documents: Path, embeddings: Path, items: Path, tune_queries: dict[str, np.ndarray],
                settings: IndexSettings,
                executor: executors.ExecutorSettings = executors.ExecutorSettings()) -> dict[str, Any]:
    """Build, tune and write the index folder `out` (swapped in when complete); return the report."""
    vectors = np.load(embeddings, mmap_mode="r", allow_pickle=False)
    n_documents = pq.read_metadata(documents).num_rows
    if vectors.ndim != 2 or len(vectors) != n_documents:
        raise ValueError(f"{embeddings}: shape {vectors.shape} does not match {n_documents} documents in {documents}")
    with atomic_dir(out) as tmp:
        start = time.perf_counter()
        entries = build_shards(tmp, documents, embeddings, items, settings, executor)
        build_s = time.perf_counter() - start
        manifest = write_manifest(tmp, entries, dim=vectors.shape[1], ef_search=settings.ef_search_grid[-1],
                                  m=settings.m, ef_construction=settings.ef_construction)
        curve = recall_curve(ShardedIndex.open(tmp), tune_queries, settings)
        key = f"recall_at_{settings.tune_k}"
        ef_search = choose_ef_search(curve, key, settings.recall_target)
        replace(manifest, ef_search=ef_search).write(tmp)
    chosen = next(point for point in curve if point["ef_search"] == ef_search)
    log.info("efSearch %d: %s %.4f (target %g)", ef_search, key, chosen[key], settings.recall_target)
    return {"count": manifest.count, "shards": settings.shards, "dim": manifest.dim, "m": settings.m,
            "ef_construction": settings.ef_construction, "build_s": build_s, "ef_search": ef_search,
            "recall_target": settings.recall_target, **{k: v for k, v in chosen.items() if k.startswith(key)},
            "target_met": chosen[key] >= settings.recall_target,
            "tune_queries": {name: len(vectors) for name, vectors in tune_queries.items()}, "curve": curve}


def sample_queries(pairs: Path, limit: int, seed: int) -> list[str]:
    """Up to `limit` distinct query texts of a pairs file, a seeded sample."""
    queries = sorted(set(conform(pq.read_table(pairs), PAIRS, str(pairs)).column("query").to_pylist()))
    rng = np.random.default_rng(seed)
    return [queries[i] for i in sorted(rng.choice(len(queries), size=min(limit, len(queries)), replace=False))]


def tuning_texts(queries: list[str], short_words: int) -> dict[str, list[str]]:
    """The sampled queries whole, and cut to their first `short_words` words.

    The validation queries come in their test-time form (review summaries, movie titles, conversational
    requests); cut short they stand for the terse queries users also type, which land elsewhere in the
    space and can need a larger efSearch. Tuning on both covers both.
    """
    return {"full": queries, "short": [" ".join(text.split()[:short_words]) for text in queries]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec index", description=__doc__)
    parser.add_argument("--documents", type=Path, required=True, help="pairs stage documents.parquet")
    parser.add_argument("--embeddings", type=Path, required=True, help="embed stage .npy (row i = document i)")
    parser.add_argument("--items", type=Path, required=True, help="ingest items.parquet (display fields)")
    parser.add_argument("--queries", type=Path, required=True, help="pairs whose queries tune efSearch (validation split)")
    parser.add_argument("--encoder", type=Path, required=True, help="ONNX encoder folder for those queries")
    parser.add_argument("--out", type=Path, required=True, help="index folder to write")
    parser.add_argument("--report", type=Path, required=True, help="build + tuning figures (JSON, DVC metrics)")
    parser.add_argument("--curve", type=Path, required=True, help="efSearch -> recall curve (CSV, DVC plot)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_section("index", args.params)
    settings = IndexSettings.from_params(params, f"{args.params}: index")
    executor = executors.load(args.params)
    conform(pq.read_table(args.documents), DOCUMENTS, str(args.documents))
    texts = tuning_texts(sample_queries(args.queries, int(params["tune_queries"]), int(params["seed"])),
                         int(params["tune_short_words"]))
    encoder = Encoder.load(args.encoder, "int8")
    tune_vectors = {name: encoder.encode(part) for name, part in texts.items()}
    report = build_index(args.out, args.documents, args.embeddings, args.items, tune_vectors, settings, executor)
    write_csv(report["curve"], args.curve)
    write_json(report, args.report)
    return 0
