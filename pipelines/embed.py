"""Embed every catalog document with the INT8 ONNX encoder into a float32 `.npy` (row i = document i).

The array is written through a memory map (never whole in RAM) to `<out>.partial`, renamed onto
`<out>` when complete, and reads back memory-mapped with `np.load(path, mmap_mode="r")`. The stage
is resumable: after each chunk is flushed, `<out>.progress.json` records how many rows are done and
a fingerprint of the inputs (documents, encoder file, variant); a rerun with the same fingerprint
continues where the last one stopped (826k documents take hours on 2 cores), any other starts over.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from pipelines.common.atomic import write_json
from pipelines.common.params import load_section
from pipelines.common.schemas import DOCUMENTS, conform
from serving.encoder import VARIANTS, Encoder, model_file

log = logging.getLogger(__name__)


def embed_to_npy(encoder: Encoder, texts: Sequence[str], path: str | Path, batch_size: int,
                 resume_key: str | None = None) -> int:
    """Encode `texts` in chunks (sorted by length inside each) straight into a memory-mapped .npy.

    With a `resume_key`, a partial run with the same key is continued. Returns the rows embedded now."""
    path = Path(path)
    partial, progress = path.with_name(path.name + ".partial"), path.with_name(path.name + ".progress.json")
    chunk, shape = batch_size * 16, (len(texts), encoder.dim)
    state = json.loads(progress.read_text()) if resume_key and progress.is_file() and partial.is_file() else {}
    if state.get("key") == resume_key and state.get("shape") == list(shape):
        out, done = np.load(partial, mmap_mode="r+"), int(state["done"])
        log.info("resuming %s at row %d of %d", path, done, len(texts))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        out, done = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape), 0
    try:
        for start in tqdm(range(done, len(texts), chunk), desc=f"embed {path.name}", unit="chunk", disable=None):
            out[start:start + chunk] = encoder.encode(texts[start:start + chunk], batch_size=batch_size)
            if resume_key:
                out.flush()
                write_json({"key": resume_key, "shape": list(shape), "done": min(start + chunk, len(texts))},
                           progress)
        out.flush()
    except BaseException:
        if not resume_key:  # nothing to resume: leave no partial file
            partial.unlink(missing_ok=True)
        raise
    finally:
        del out
    os.chmod(partial, 0o644)
    os.replace(partial, path)
    progress.unlink(missing_ok=True)
    return len(texts) - done


def fingerprint(*paths: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        with path.open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


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
    key = fingerprint(args.documents, args.encoder / model_file(params["variant"]), extra=params["variant"])
    start = time.perf_counter()
    embedded = embed_to_npy(encoder, texts, args.out, int(params["batch_size"]), resume_key=key)
    seconds = time.perf_counter() - start
    log.info("embedded %d of %d documents in %.1f s", embedded, len(texts), seconds)
    write_json({"documents": len(texts), "dim": encoder.dim, "variant": params["variant"], "seconds": seconds,
                "embedded_this_run": embedded, "documents_per_s": embedded / seconds if seconds else None},
               args.report)
    return 0
