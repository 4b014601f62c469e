"""Encoder benchmark: PyTorch FP32 vs ONNX FP32 vs ONNX INT8, at 1 and 2 threads, side by side.

    python bench/encoder.py [--quick] [--model models/fashion/finetuned] [--encoder models/fashion/onnx]

Batch-1 query latency (p50/p99 over real test queries) and documents/s at batch 32 (real documents).
`onnx_int8_unfused` is the same INT8 quantization of a graph exported without the transformer fusions
(pipelines/onnx_export.py), built here in a scratch folder: what the fusions buy.
Variants take turns over blocks of `BLOCK` queries, so background load hits all of them alike, while
each runs warm within its block as a serving loop does: timing every variant on every query in turn
(the first design) had the 90 MB FP32 models evict the 23 MB INT8 model from the 32 MB L3 cache
before each of its queries, and measured a cold-cache INT8 latency no server sees. Writes
bench/results/encoder.json and .md. Goals: INT8 >= 6x faster than PyTorch FP32 at batch 1 on one
thread, INT8 p50 <= 2 ms (MiniLM), INT8 file <= 1/3.5 of FP32.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from sentence_transformers import SentenceTransformer

from pipelines.onnx_export import export_onnx
from pipelines.quantize import quantize_int8
from pipelines.retrieval.encode import encode
from serving.encoder import CONFIG_FILE, TOKENIZER_FILE, Encoder, model_file

from measure import write_results  # bench/measure.py

Embed = Callable[[list[str], int], np.ndarray]
THREADS = (1, 2)
BLOCK = 25  # queries a variant runs in a row
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # x86 INT8 dot-product instructions


def cpu() -> dict[str, object]:
    """The CPU model and whether it has INT8 dot-product instructions: without them ONNX Runtime's
    INT8 matmuls run on AVX2 multiply-adds, which sets the floor of the INT8 latency."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return {"model": "unknown", "avx2": None, "int8_dot_product": None}
    fields: dict[str, str] = {}
    for line in info:
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())  # the first core's entry
    flags = fields.get("flags", "").split()
    return {"model": fields.get("model name", "unknown"), "avx2": "avx2" in flags,
            "int8_dot_product": any(flag in flags for flag in INT8_DOT_FLAGS)}


def unfused_encoder(model: SentenceTransformer, encoder_dir: Path, folder: Path) -> Path:
    """An encoder folder like `encoder_dir` whose INT8 graph skips the transformer fusions."""
    for name in (TOKENIZER_FILE, CONFIG_FILE):
        shutil.copy(encoder_dir / name, folder / name)
    export_onnx(model, folder / model_file("fp32"), fuse=False)
    quantize_int8(folder / model_file("fp32"), folder / model_file("int8"), keep_fp32=[])
    return folder


def variants(model_dir: Path, encoder_dir: Path, scratch: Path) -> dict[tuple[str, int], Embed]:
    """(variant, threads) -> embed(texts, batch_size)."""
    model = SentenceTransformer(str(model_dir), device="cpu")
    unfused_dir = unfused_encoder(model, encoder_dir, scratch)

    def pytorch(threads: int) -> Embed:
        def embed(texts: list[str], batch_size: int) -> np.ndarray:
            torch.set_num_threads(threads)
            return encode(model, texts, batch_size)
        return embed

    def onnx(variant: str, threads: int, folder: Path = encoder_dir) -> Embed:
        encoder = Encoder.load(folder, variant, threads=threads)  # type: ignore[arg-type]
        return lambda texts, batch_size: encoder.encode(texts, batch_size=batch_size)

    table: dict[tuple[str, int], Embed] = {}
    for threads in THREADS:
        table[("pytorch_fp32", threads)] = pytorch(threads)
        table[("onnx_fp32", threads)] = onnx("fp32", threads)
        table[("onnx_int8", threads)] = onnx("int8", threads)
        table[("onnx_int8_unfused", threads)] = onnx("int8", threads, unfused_dir)
    return table


def latencies(embeds: dict[tuple[str, int], Embed], queries: list[str], warmup: int,
              block: int) -> dict[tuple[str, int], np.ndarray]:
    """Batch-1 latency in ms of every variant on every query: the queries in blocks, each variant
    running a whole block in turn (after `warmup` untimed queries) before the next one's turn."""
    times: dict[tuple[str, int], list[float]] = {key: [] for key in embeds}
    for start in range(0, len(queries), block):
        chunk = queries[start:start + block]
        for key, embed in embeds.items():
            for query in chunk[:warmup]:
                embed([query], 1)
            for query in chunk:
                began = time.perf_counter()
                embed([query], 1)
                times[key].append((time.perf_counter() - began) * 1000)
    return {key: np.array(values) for key, values in times.items()}


def throughput(embed: Embed, documents: list[str]) -> float:
    start = time.perf_counter()
    embed(documents, 32)
    return len(documents) / (time.perf_counter() - start)


def markdown(result: dict) -> str:
    lines = [f"# Encoder benchmark ({result['model']})", "",
             f"{result['queries']} batch-1 queries (variants take turns over blocks of {result['block']}), "
             f"{result['documents']} documents at batch 32; "
             f"load average before/after: {result['loadavg_before']} / {result['loadavg_after']}.",
             f"CPU: {result['cpu']['model']}, {result['cpu_count']} cores, AVX2 {result['cpu']['avx2']}, "
             f"INT8 dot-product instructions (VNNI/AMX) {result['cpu']['int8_dot_product']}.", "",
             "| variant | threads | p50 ms | p99 ms | docs/s (batch 32) |", "|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['variant']} | {row['threads']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                     f"{row['docs_per_s']:.1f} |")
    goals = result["goals"]
    lines += ["", f"- INT8 vs PyTorch FP32, batch 1, 1 thread: {goals['int8_speedup_1_thread']:.1f}x "
                  f"(goal >= 6x: {'met' if goals['int8_speedup_met'] else 'NOT met'})",
              f"- INT8 p50, 1 thread: {goals['int8_p50_ms_1_thread']:.2f} ms "
              f"(goal <= 2 ms: {'met' if goals['int8_p50_met'] else 'NOT met'})",
              f"- transformer fusions (onnx_int8 vs onnx_int8_unfused), batch 1, 1 thread: "
              f"{goals['fusion_speedup_1_thread']:.2f}x",
              f"- model files: FP32 {result['model_fp32_bytes'] / 1e6:.1f} MB, INT8 {result['model_int8_bytes'] / 1e6:.1f} MB, "
              f"ratio {goals['size_ratio']:.2f} (goal >= 3.5: {'met' if goals['size_ratio_met'] else 'NOT met'})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/fashion/finetuned"))
    parser.add_argument("--encoder", type=Path, default=Path("models/fashion/onnx"))
    parser.add_argument("--queries", type=Path, default=Path("data/fashion/pairs/test_hard.parquet"))
    parser.add_argument("--documents", type=Path, default=Path("data/fashion/pairs/documents.parquet"))
    parser.add_argument("--quick", action="store_true", help="30 queries and 64 documents: a smoke run")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    n_queries, n_documents, warmup = (30, 64, 2) if args.quick else (300, 512, 3)

    queries = pq.read_table(args.queries)["query"].to_pylist()[:n_queries]
    documents = pq.read_table(args.documents)["document"].to_pylist()[:n_documents]
    loadavg_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as scratch:
        embeds = variants(args.model, args.encoder, Path(scratch))
        times = latencies(embeds, queries, warmup, BLOCK)
        rows = [{"variant": variant, "threads": threads,
                 "p50_ms": float(np.percentile(times[(variant, threads)], 50)),
                 "p99_ms": float(np.percentile(times[(variant, threads)], 99)),
                 "docs_per_s": throughput(embed, documents)} for (variant, threads), embed in embeds.items()]
    p50 = {(r["variant"], r["threads"]): r["p50_ms"] for r in rows}
    sizes = {f"model_{v}_bytes": (args.encoder / model_file(v)).stat().st_size for v in ("fp32", "int8")}
    speedup = p50[("pytorch_fp32", 1)] / p50[("onnx_int8", 1)]
    fusion = p50[("onnx_int8_unfused", 1)] / p50[("onnx_int8", 1)]
    size_ratio = sizes["model_fp32_bytes"] / sizes["model_int8_bytes"]
    result = {"model": str(args.model), "encoder": str(args.encoder), "queries": len(queries),
              "documents": len(documents), "block": BLOCK, "quick": args.quick, "cpu_count": os.cpu_count(),
              "cpu": cpu(),
              "loadavg_before": loadavg_before, "loadavg_after": round(os.getloadavg()[0], 2), "rows": rows, **sizes,
              "goals": {"int8_speedup_1_thread": speedup, "int8_speedup_met": speedup >= 6,
                        "int8_p50_ms_1_thread": p50[("onnx_int8", 1)], "int8_p50_met": p50[("onnx_int8", 1)] <= 2,
                        "size_ratio": size_ratio, "size_ratio_met": size_ratio >= 3.5,
                        "fusion_speedup_1_thread": fusion}}
    write_results(args.out, "encoder", result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
