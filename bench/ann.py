"""Exact flat search vs HNSW at catalog scale: batch-1 latency, ANN recall@10 per efSearch, build cost.

Vectors are synthetic and clustered like sentence embeddings: Gaussian clusters in a low-dimensional
latent space, embedded linearly in 384-d, plus isotropic noise, L2-normalised (sentence embeddings'
intrinsic dimension is far below their width; i.i.d. 384-d noise would have no neighbourhood structure
for any index to exploit). Queries are fresh draws from the same mixture, never indexed points.
Every size is measured side by side in one run: exact IndexFlatIP and the `serving.shards` HNSW build,
both searched one query at a time on one thread. Results go to bench/results/ann.{json,md}, rewritten
after each size so a long run leaves what it has finished.

    python bench/ann.py                      # 100k and 1M (the 1M HNSW build takes minutes)
    python bench/ann.py --quick              # 20k, smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from pipelines.index import ann_recall
from serving.shards import build_hnsw

RESULTS = Path(__file__).parent / "results"
DIM = 384


def clustered(n: int, seed: int, clusters: int, latent_dim: int, spread: float, noise: float) -> np.ndarray:
    """`n` L2-normalised 384-d vectors from a Gaussian mixture in a `latent_dim` subspace plus noise.

    Cluster centres are standard normal; `spread` is the within-cluster standard deviation relative to
    them. The defaults give a mean top-1 neighbour cosine near 0.65, as for MiniLM sentence embeddings.
    """
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(0).normal(size=(latent_dim, DIM)).astype(np.float32) / np.sqrt(latent_dim)
    centres = np.random.default_rng(1).normal(size=(clusters, latent_dim)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        latent = centres[rng.integers(clusters, size=m)] + spread * rng.normal(size=(m, latent_dim)).astype(np.float32)
        block = latent @ basis + noise * rng.normal(size=(m, DIM)).astype(np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def batch1_latencies_ms(index: faiss.Index, queries: np.ndarray, k: int) -> np.ndarray:
    times = np.empty(len(queries))
    for i in range(len(queries)):
        start = time.perf_counter()
        index.search(queries[i:i + 1], k)
        times[i] = time.perf_counter() - start
    return times * 1e3


def summary(ms: np.ndarray) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def index_bytes(index: faiss.Index) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        faiss.write_index(index, f"{tmp}/index.faiss")
        return os.path.getsize(f"{tmp}/index.faiss")


def interleaved_ms(flat: faiss.Index, hnsw: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch-1 latencies of both indexes, alternating query by query: load drift hits both alike, but
    every exact scan evicts the HNSW graph from the CPU caches, so HNSW is timed cold (a lower bound)."""
    exact, ann = np.empty(len(queries)), np.empty(len(queries))
    for i in range(len(queries)):
        exact[i] = batch1_latencies_ms(flat, queries[i:i + 1], k)[0]
        ann[i] = batch1_latencies_ms(hnsw, queries[i:i + 1], k)[0]
    return exact, ann


def measure_hnsw(vectors: np.ndarray, queries: np.ndarray, flat: faiss.Index, exact_scores: np.ndarray,
                 exact_p50: float, ef_construction: int, args: argparse.Namespace) -> dict:
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    hnsw = build_hnsw(vectors, args.m, ef_construction)
    build_s = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    curve = []
    for ef in args.ef:
        hnsw.hnsw.efSearch = ef
        found, _ = hnsw.search(queries, 10)  # scores: tie-aware recall
        curve.append({"ef_search": ef, "recall_at_10": ann_recall(found, exact_scores),
                      **summary(batch1_latencies_ms(hnsw, queries, 10))})
    chosen = next((point for point in curve if point["recall_at_10"] >= args.target), None)
    result = {"m": args.m, "ef_construction": ef_construction, "build_s": build_s, "build_threads": os.cpu_count(),
              "bytes": index_bytes(hnsw), "curve": curve, "chosen_ef_search": chosen and chosen["ef_search"],
              "p50_ms_at_target": chosen and chosen["p50_ms"],
              "speedup_p50_at_target": chosen and exact_p50 / chosen["p50_ms"]}
    if chosen:
        hnsw.hnsw.efSearch = chosen["ef_search"]
        exact_ms, ann_ms = interleaved_ms(flat, hnsw, queries[:args.exact_queries], 10)
        result["interleaved"] = {"exact_p50_ms": float(np.median(exact_ms)), "hnsw_p50_ms": float(np.median(ann_ms)),
                                 "speedup_p50": float(np.median(exact_ms) / np.median(ann_ms))}
    return result


def measure(n: int, args: argparse.Namespace) -> dict:
    mixture = {"clusters": args.clusters, "latent_dim": args.latent_dim, "spread": args.spread, "noise": args.noise}
    vectors = clustered(n, seed=n, **mixture)
    queries = clustered(args.queries, seed=n + 1, **mixture)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    exact_scores, _ = flat.search(queries, 10)
    faiss.omp_set_num_threads(1)
    exact = {**summary(batch1_latencies_ms(flat, queries[:args.exact_queries], 10)), "bytes": index_bytes(flat)}
    hnsw = [measure_hnsw(vectors, queries, flat, exact_scores, exact["p50_ms"], efc, args)
            for efc in args.ef_construction]
    return {"n": n, "dim": DIM, "data": mixture, "top1_cosine_mean": float(exact_scores[:, 0].mean()),
            "queries": args.queries, "exact_queries": args.exact_queries, "search_threads": 1,
            "target_recall_at_10": args.target, "exact": exact, "hnsw": hnsw}


def markdown(runs: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "# ANN benchmark: exact IndexFlatIP vs IndexHNSWFlat (batch 1, 1 search thread)",
        "",
        f"Command: `python bench/ann.py {' '.join(args.argv)}`. Data: {args.clusters} Gaussian clusters in a "
        f"{args.latent_dim}-d latent space (within-cluster sd {args.spread}), embedded in {DIM}-d, noise "
        f"{args.noise}, L2-normalised; queries are fresh draws (mean top-1 cosine: "
        + ", ".join(f"{r['top1_cosine_mean']:.2f}" for r in runs) + "). "
        "Build on all cores; searches on one thread, one query at a time. Speed-up: exact p50 / HNSW p50 at "
        "the smallest efSearch reaching the recall target, from the sweep (warm caches, as when serving), and "
        "again with the two searches interleaved query by query: robust to load drift on a shared machine, "
        "but each exact scan evicts the HNSW graph from the CPU caches, so that column is a cold-cache "
        "lower bound.",
        "",
        f"| n | exact p50 ms | M | efConstruction | build s | HNSW MB | exact MB | efSearch at recall@10 >= "
        f"{args.target} | HNSW p50 ms | speed-up | speed-up, interleaved (cold cache) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for h in run["hnsw"]:
            reached = h["chosen_ef_search"] is not None
            lines.append(
                f"| {run['n']:,} | {run['exact']['p50_ms']:.2f} | {h['m']} | {h['ef_construction']} | "
                f"{h['build_s']:.1f} | {h['bytes'] / 2**20:.0f} | {run['exact']['bytes'] / 2**20:.0f} | "
                + (f"{h['chosen_ef_search']} | {h['p50_ms_at_target']:.3f} | {h['speedup_p50_at_target']:.0f}x | "
                   f"{h['interleaved']['speedup_p50']:.0f}x |" if reached
                   else f"not reached (max {max(p['recall_at_10'] for p in h['curve']):.4f}) | - | - | - |"))
    for run in runs:
        for h in run["hnsw"]:
            lines += ["", f"## n = {run['n']:,}, M {h['m']}, efConstruction {h['ef_construction']}", "",
                      "| efSearch | recall@10 | p50 ms | p99 ms | speed-up (p50) |", "|---|---|---|---|---|"]
            lines += [f"| {p['ef_search']} | {p['recall_at_10']:.4f} | {p['p50_ms']:.3f} | {p['p99_ms']:.3f} | "
                      f"{run['exact']['p50_ms'] / p['p50_ms']:.0f}x |" for p in h["curve"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="20k vectors, 100 queries: a smoke run")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--exact-queries", type=int, default=100, help="batch-1 exact searches timed")
    parser.add_argument("--ef", type=int, nargs="+", default=[16, 24, 32, 40, 48, 56, 64, 96, 128, 192, 256, 384, 512])
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, nargs="+", default=[40, 100, 200],
                        help="each builds its own HNSW index over the same vectors")
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else __import__("sys").argv[1:]
    if args.quick:
        args.sizes, args.queries, args.exact_queries = [20_000], 100, 50
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for n in args.sizes:
        runs.append(measure(n, args))
        print(json.dumps(runs[-1], indent=1), flush=True)
        (args.out / "ann.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n", encoding="utf-8")
        (args.out / "ann.md").write_text(markdown(runs, args), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
