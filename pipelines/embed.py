"""Embed every catalog document with the INT8 ONNX encoder into a float32 `.npy` (row i = document i).

The array is written through a memory map (never whole in RAM) to a temp file renamed on success,
and reads back memory-mapped with `np.load(path, mmap_mode="r")`.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from pipelines.common.atomic import atomic_path, write_json
from pipelines.common.params import load_section
from pipelines.common.schemas import DOCUMENTS, conform
from serving.encoder import VARIANTS, Encoder

log = logging.getLogger(__name__)


def embed_to_npy(encoder: Encoder, texts: Sequence[str], path: str | Path, batch_size: int) -> None:
    """Encode `texts` in chunks (sorted by length inside each) straight into a memory-mapped .npy."""
    chunk = batch_size * 16
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(texts), encoder.dim))
        for start in tqdm(range(0, len(texts), chunk), desc=f"embed {Path(path).name}", unit="chunk",
                          disable=None):
            out[start:start + chunk] = encoder.encode(texts[start:start + chunk], batch_size=batch_size)
        out.flush()
        del out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec embed", description=__doc__)
    parser.add_argument("--documents", type=Path, required=True, help="pairs stage documents.parquet")
    parser.add_argument("--encoder", type=Path, required=True, help="ONNX encoder folder (quantize stage)")
    parser.add_argument("--out", type=Path, required=True, help="embeddings .npy to write")
    parser.add_argument("--report", type=Path, required=True, help="embedding throughput (JSON, DVC metrics)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_section("embed", args.params)
    if params["variant"] not in VARIANTS:
        raise ValueError(f"{args.params}: embed.variant must be one of {VARIANTS}, not {params['variant']!r}")
    documents = conform(pq.read_table(args.documents), DOCUMENTS, str(args.documents))
    texts = documents.column("document").to_pylist()
    encoder = Encoder.load(args.encoder, params["variant"], params["threads"])
    start = time.perf_counter()
    embed_to_npy(encoder, texts, args.out, int(params["batch_size"]))
    seconds = time.perf_counter() - start
    log.info("embedded %d documents in %.1f s", len(texts), seconds)
    write_json({"documents": len(texts), "dim": encoder.dim, "variant": params["variant"], "seconds": seconds,
                "documents_per_s": len(texts) / seconds if seconds else None}, args.report)
    return 0
