"""Scale run: a paper-size Amazon Reviews 2023 category through ingest -> pairs -> embed -> index -> fusion -> publish
-> a query.

The category (bench/amazon_category.py: 2,500,000 reviews + 826,000 items, malformed lines
included) goes through the real stage commands, each a subprocess whose time and peak RSS (the
whole process tree: the engines' worker pools count) are recorded. The encoder is the base model
exported to INT8 ONNX (`semrec quantize`, done beforehand: `--encoder`); quality is not the point
here, scale is. Embedding is the long pole (hours on 2 cores): docs/s by document length is measured
first, the embed stage runs under `nice -n 19` with 1 ONNX thread, and it resumes where it stopped
(pipelines/embed.py), as does this script: a stage whose result is recorded is not run again.
The gate metric publish needs (int8_hnsw recall@10) is measured here on up to 1,000 hard test
queries against the built index; the fusion stage tunes on the first 1,000 validation pairs (each
query is scored against every document by BM25: all ~50k would take most of an hour).

    nohup nice -n 19 python bench/scale.py --encoder /tmp/scale/encoder --work /tmp/scale > scale.log &
Results: bench/results/scale.{json,md}, rewritten after every stage (a partial run reports what ran).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from amazon_category import CATEGORY, generate  # noqa: E402
from measure import ROOT, run, write_results  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CATALOG = "scale"
LENGTHS = (64, 128, 256, 512, 1024)  # characters per document, for docs/s by length
STAGES = ("generate", "ingest", "pairs", "embed", "index", "fusion", "gate", "publish", "query")  # in run order
FUSION_QUERIES = "pairs/validation_1k.parquet"  # the fusion stage tunes on the first 1,000 validation pairs


def params(work: Path, threads: int) -> Path:
    """params.yaml with the scale catalog's block added (its source: the generated files under `work`)."""
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    base["catalogs"][CATALOG] = {"source": str(work / "raw"), "pairs": {"queries": "reviews"},
                                 "ingest": {"plugin": "amazon2023", "category": CATEGORY}}
    base["embed"]["threads"] = threads
    base["index"]["workers"] = 1
    base["publish"]["gate"]["metric"] = ["int8_hnsw", "recall@10"]  # gate_metric's key path in metrics.json
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


def docs_per_s_by_length(encoder: Path, threads: int, n: int = 128) -> list[dict[str, Any]]:
    """INT8 docs/s (wall, and per CPU second: the machine is shared) for documents cut to each of LENGTHS
    characters (real review text), batch 64."""
    from serving.encoder import Encoder
    texts = pl.read_parquet(ROOT / "data/fetched/womens_clothing_reviews.parquet")["Review Text"].drop_nulls().to_list()
    long = [" ".join(texts[i:i + 8]) for i in range(0, 8 * n, 8)]  # 8 reviews joined: longer than any length
    model = Encoder.load(encoder, "int8", threads)
    model.encode(long[:8])
    rows = []
    for length in LENGTHS:
        docs = [t[:length] for t in long]
        start, cpu = time.perf_counter(), time.process_time()
        model.encode(docs, batch_size=64)
        rows.append({"chars": length, "docs_per_s": round(len(docs) / (time.perf_counter() - start), 1),
                     "docs_per_cpu_s": round(len(docs) / (time.process_time() - cpu), 1)})
    return rows


def gate_metric(work: Path, encoder: Path, limit: int = 1000) -> dict[str, Any]:
    """int8_hnsw recall@10 on up to `limit` hard test queries against the built index (publish's gate)."""
    from serving.encoder import Encoder
    from serving.shards import ShardedIndex
    test = pl.read_parquet(work / "pairs/test_hard.parquet").head(limit)
    index = ShardedIndex.open(work / "index")
    start = time.perf_counter()
    hits = index.search(Encoder.load(encoder, "int8").encode(test["query"].to_list()), k=10)
    found = [set(index.metadata(hits.shards[q][hits.found(q)], hits.rows[q][hits.found(q)])["item_id"].to_pylist())
             for q in range(test.height)]
    recall = float(np.mean([item in f for item, f in zip(test["item_id"].to_list(), found)]))
    metrics = {"int8_hnsw": {"recall@10": recall, "queries": test.height}}
    (work / "metrics.json").write_text(json.dumps(metrics))
    return {**metrics, "seconds": round(time.perf_counter() - start, 1)}


def stages(work: Path, encoder: Path, params_file: Path) -> dict[str, list[str]]:
    semrec, p = [sys.executable, "-m", "pipelines.cli"], ["--params", str(params_file)]
    return {
        "ingest": [*semrec, "ingest", "--catalog", CATALOG, "--source", str(work / "raw"), "--out",
                   str(work / "ingest"), *p],
        "pairs": [*semrec, "pairs", "--catalog", CATALOG, "--ingest", str(work / "ingest"), "--out",
                  str(work / "pairs"), *p],
        "embed": [*semrec, "embed", "--documents", str(work / "pairs/documents.parquet"), "--encoder", str(encoder),
                  "--out", str(work / "embed/embeddings.npy"), "--report", str(work / "embed.json"), *p],
        "index": [*semrec, "index", "--documents", str(work / "pairs/documents.parquet"), "--embeddings",
                  str(work / "embed/embeddings.npy"), "--items", str(work / "ingest/items.parquet"), "--queries",
                  str(work / "pairs/validation.parquet"), "--encoder", str(encoder), "--out", str(work / "index"),
                  "--report", str(work / "index.json"), "--curve", str(work / "curve.csv"), *p],
        "fusion": [*semrec, "fusion", "--index", str(work / "index"), "--encoder", str(encoder), "--documents",
                   str(work / "pairs/documents.parquet"), "--validation", str(work / FUSION_QUERIES), "--out",
                   str(work / "fusion.json"), *p],
        "publish": [*semrec, "publish", "--catalog", CATALOG, "--root", str(work / "published"), "--index",
                    str(work / "index"), "--encoder", str(encoder), "--documents",
                    str(work / "pairs/documents.parquet"), "--fusion", str(work / "fusion.json"),
                    "--metrics", str(work / "metrics.json"), "--report", str(work / "publish.json"), *p],
        "query": [*semrec, "query", "a soft summer dress with pockets", "--catalog", CATALOG,
                  "--root", str(work / "published"), "--cache", str(work / "cache"), "--k", "5", "--json"],
    }


def query_hits(query: dict[str, Any]) -> list[dict[str, Any]]:
    """The hits `semrec query --json` printed (its output may carry log lines before the JSON)."""
    output = query["output"]
    return json.loads(output[output.index("{"):])["items"]


def report(result: dict[str, Any]) -> str:
    lines = [
        "# Scale run: a paper-size category through ingest -> pairs -> embed -> index -> fusion -> publish -> query",
        "",
        f"Command: `{result['command']}`. Input: bench/amazon_category.py, {result['reviews']:,} reviews + "
        f"{result['items']:,} items in the Amazon Reviews 2023 JSONL schema (40 malformed lines), "
        f"{result['input_mb']:,} MB. Encoder: the base model as INT8 ONNX, {result['threads']} ONNX thread(s), "
        f"embed under `nice -n 19`. Machine: {result['cpus']} cores shared with other jobs. Peak RSS: the "
        "stage's whole process tree (worker pools included), sampled every 0.2 s. The reviews are real review "
        "sentences given to generated items at random, so retrieval quality is ~0 by construction (the gate's "
        "recall@10 below): this run measures time and memory.",
        "",
        "| stage | seconds | CPU seconds | peak RSS MB | exit |",
        "|---|---|---|---|---|",
    ]
    for name in (s for s in STAGES if s in result["stages"]):
        r = result["stages"][name]
        lines.append(f"| {name} | {r.get('seconds', '')} | {r.get('cpu_seconds', '')} | {r.get('peak_rss_mb', '')} | "
                     f"{r.get('exit', '')} |")
    lines += ["", f"INT8 encoder by document length (real review text cut to length, batch 64, {result['threads']} "
              "thread(s)); the generated item documents are ~110-150 characters:", "",
              "| characters | docs/s (wall) | docs per CPU second |", "|---|---|---|",
              *(f"| {r['chars']} | {r['docs_per_s']} | {r.get('docs_per_cpu_s', '')} |"
                for r in result.get("docs_per_s_by_length", []))]
    embed = result.get("embed", {})
    if embed and embed.get("embedded_this_run", embed["documents"]) < embed["documents"]:
        lines += ["", f"embed resumed across runs: its seconds are the last run's, which embedded "
                  f"{embed['embedded_this_run']:,} of the {embed['documents']:,} documents."]
    if "query" in result:
        lines += ["", f"Query `{result['query']['text']}` on the published snapshot (`semrec query --k 5`):", "",
                  "| item | score | title |", "|---|---|---|",
                  *(f"| {h['item_id']} | {h['score']:.3f} | {h['title']} |" for h in query_hits(result["query"]))]
    for key in ("ingest_counts", "pairs", "embed", "index", "gate", "fusion", "publish"):
        if key in result:
            lines += ["", f"{key}:", "", "```json", json.dumps(result[key], indent=1)[:3000], "```"]
    if result.get("embed_progress"):
        done = result["embed_progress"]
        lines += ["", f"embed (not finished): {done['done']:,} of {done['shape'][0]:,} documents embedded and kept "
                  "in `embeddings.npy.partial`; rerunning this command resumes there."]
    if result.get("not_run"):
        lines += ["", f"Not run (yet): {', '.join(result['not_run'])}."]
    return "\n".join(lines) + "\n"


def save(result: dict[str, Any], name: str) -> None:
    result["not_run"] = [s for s in STAGES if s not in result["stages"] or result["stages"][s].get("exit")]
    write_results(RESULTS, name, result, report(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=2_500_000)
    parser.add_argument("--items", type=int, default=826_000)
    parser.add_argument("--encoder", type=Path, required=True, help="INT8 ONNX encoder folder (semrec quantize)")
    parser.add_argument("--work", type=Path, required=True, help="work folder (resumable)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX threads for embedding")
    parser.add_argument("--stages", nargs="*", help="run only these stages (default: all; none: just report)")
    parser.add_argument("--results-name", default="scale", help="bench/results/<name>.{json,md}")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    state = args.work / "scale.json"
    result = json.loads(state.read_text()) if state.is_file() else {
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]), "reviews": args.reviews, "items": args.items,
        "threads": args.threads, "cpus": os.cpu_count(), "stages": {}}
    params_file = params(args.work, args.threads)

    def record() -> None:
        progress = args.work / "embed/embeddings.npy.progress.json"
        result["embed_progress"] = json.loads(progress.read_text()) if progress.is_file() else None
        state.write_text(json.dumps(result, indent=2))
        save(result, args.results_name)

    if "generate" not in result["stages"]:
        start = time.perf_counter()
        generate(args.reviews, args.items, args.work / "raw")
        result["stages"]["generate"] = {"seconds": round(time.perf_counter() - start, 1), "exit": 0}
        result["input_mb"] = round(sum(p.stat().st_size for p in (args.work / "raw").rglob("*.jsonl")) / 2**20)
        record()
    if not all(r.get("docs_per_cpu_s") for r in result.get("docs_per_s_by_length", [{}])):
        result["docs_per_s_by_length"] = docs_per_s_by_length(args.encoder, args.threads)
        record()
    for name, argv in stages(args.work, args.encoder, params_file).items():
        if result["stages"].get(name, {}).get("exit") == 0 or (args.stages is not None and name not in args.stages):
            continue
        if name == "fusion" and not (args.work / FUSION_QUERIES).is_file():
            pq.write_table(pq.read_table(args.work / "pairs/validation.parquet").slice(0, 1000),
                           args.work / FUSION_QUERIES)
        if name == "publish" and result["stages"].get("gate", {}).get("exit") != 0:
            start = time.perf_counter()
            result["gate"] = gate_metric(args.work, args.encoder)
            result["stages"]["gate"] = {"seconds": round(time.perf_counter() - start, 1), "exit": 0}
            record()
        result["stages"][name] = run(argv, args.work / f"{name}.log", nice=19 if name == "embed" else 0)
        for key, path in (("ingest_counts", "ingest/counts.json"), ("pairs", "pairs/pairs.json"),
                          ("embed", "embed.json"), ("index", "index.json"), ("fusion", "fusion.json"),
                          ("publish", "publish.json")):
            if (args.work / path).is_file():
                result[key] = json.loads((args.work / path).read_text())
        if name == "query" and result["stages"][name]["exit"] == 0:
            result["query"] = {"text": argv[4], "output": (args.work / "query.log").read_text()}
        record()
        if result["stages"][name]["exit"]:
            raise SystemExit(f"{name} failed: see {args.work / name}.log")
    record()


if __name__ == "__main__":
    main()
