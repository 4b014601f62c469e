"""Embed every catalog document with the INT8 ONNX encoder into a float32 `.npy` (row i = document i).

The documents are cut into parts (row ranges) that the executor's workers embed on their own
(pipelines/common/executor.py: a local process pool, or a Dask cluster): each task reads its part's
texts from the run's work folder, embeds them and writes the part's vectors there; the driver then
copies the parts in row order into `<out>.partial` through a memory map (never whole in RAM) and
renames it onto `<out>`. It reads back memory-mapped with `np.load(path, mmap_mode="r")`.

Parts are whole chunks of `batch_size * CHUNK_BATCHES` texts, each sorted by length inside: the batches,
and so the vectors, are the ones a single process makes. The stage is resumable: the work folder is
named by a fingerprint of the inputs (documents, encoder file, variant, batch size), a rerun with the same
fingerprint embeds only the parts not yet written (826k documents take hours on 2 cores), and the folder
is removed once the output is complete.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipelines.common import executor as executors
from pipelines.common.atomic import write_json
from pipelines.common.params import load_section
from pipelines.common.schemas import DOCUMENTS, conform
from pipelines.common.workdir import WorkDir
from serving.encoder import CONFIG_FILE, TOKENIZER_FILE, VARIANTS, Encoder, EncoderConfig, Variant, model_file

log = logging.getLogger(__name__)

CHUNK_BATCHES = 16  # texts are sorted by length within a chunk of this many batches (less padding)
PART_CHUNKS = 8  # chunks per task: 8192 texts at batch size 64, about a minute on one core


def chunks(encoder: Encoder, texts: Sequence[str], batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, vectors) of each chunk of `texts`, in order."""
    size = batch_size * CHUNK_BATCHES
    for start in range(0, len(texts), size):
        yield start, encoder.encode(texts[start:start + size], batch_size=batch_size)


@contextmanager
def npy_writer(path: Path, shape: tuple[int, int]) -> Iterator[np.ndarray]:
    """A memory-mapped float32 .npy (never whole in RAM) written as `<path>.partial` and renamed onto `path`
    when the block succeeds; no partial file is left when it fails."""
    partial_path = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.lib.format.open_memmap(partial_path, mode="w+", dtype=np.float32, shape=shape)
    try:
        yield array
        array.flush()
    except BaseException:
        partial_path.unlink(missing_ok=True)
        raise
    finally:
        del array
    os.chmod(partial_path, 0o644)
    os.replace(partial_path, path)


def embed_to_npy(encoder: Encoder, texts: Sequence[str], path: str | Path, batch_size: int) -> None:
    """Encode `texts` in this process straight into the .npy `path`."""
    with npy_writer(Path(path), (len(texts), encoder.dim)) as out:
        for start, vectors in tqdm(chunks(encoder, texts, batch_size), desc=f"embed {Path(path).name}",
                                   unit="chunk", disable=None):
            out[start:start + len(vectors)] = vectors


@dataclass(frozen=True)
class EmbedJob:
    """What a task needs to embed a part (everything picklable)."""

    work: WorkDir  # texts-<part>.arrow in, part-<part>.npy out
    encoder: WorkDir  # the encoder's files (the encoder folder itself, or a copy in the work folder)
    variant: Variant
    threads: int
    batch_size: int


def texts_name(part: int) -> str:
    return f"texts-{part:06d}.arrow"


def part_name(part: int) -> str:
    return f"part-{part:06d}.npy"


def encoder_files(variant: Variant) -> tuple[str, ...]:
    return CONFIG_FILE, TOKENIZER_FILE, model_file(variant)


@lru_cache(maxsize=1)  # the latest run's only: a Dask worker outlives many runs
def worker_encoder(source: WorkDir, variant: Variant, threads: int) -> Encoder:
    """The encoder, loaded once per worker process and run."""
    return Encoder.load(source.path if source.local else fetched(source, variant).name, variant, threads)


@lru_cache(maxsize=1)
def fetched(source: WorkDir, variant: Variant) -> tempfile.TemporaryDirectory[str]:
    """A local copy of a remote encoder's files (ONNX Runtime reads files), removed when the process ends."""
    folder = tempfile.TemporaryDirectory(prefix="semrec-encoder-")
    for name in encoder_files(variant):
        source.get(name, os.path.join(folder.name, name))
    return folder


def embed_part(job: EmbedJob, part: int) -> int:
    """Embed part `part` into the work folder; returns its rows."""
    texts = job.work.read_arrow(texts_name(part)).column("document").to_pylist()
    encoder = worker_encoder(job.encoder, job.variant, job.threads)
    vectors = np.empty((len(texts), encoder.dim), dtype=np.float32)
    for start, chunk in chunks(encoder, texts, job.batch_size):
        vectors[start:start + len(chunk)] = chunk
    job.work.write_npy(part_name(part), vectors)
    return len(texts)


def embed(documents: pa.ChunkedArray, encoder: Path, variant: Variant, batch_size: int, out: Path, key: str,
          executor: executors.ExecutorSettings, workers: int, threads: int | None) -> int:
    """Embed `documents` into the .npy `out` on the executor's workers; returns the rows embedded now
    (fewer than all when a stopped run with the same `key` is resumed)."""
    default_root = WorkDir(f"{out}.parts")
    root = default_root if executor.work_url is None else WorkDir(executor.work_url)
    work = root / f"embed-{key[:16]}"
    if executor.work_url is None:  # the default root is this output's own: a run with other inputs starts over
        for stale in root.names("embed-"):
            if stale != work.url.rsplit("/", 1)[-1]:
                (root / stale).remove_all()
    work.makedirs()
    rows = batch_size * CHUNK_BATCHES * PART_CHUNKS
    parts = range(-(-len(documents) // rows))
    todo = [part for part in parts if not work.exists(part_name(part))]
    for part in todo:
        work.write_arrow(texts_name(part), [pa.table({"document": documents.slice(part * rows, rows)})])
    source = WorkDir(str(encoder))
    if executor.remote:  # the workers cannot read this machine's disk: they get a copy
        source = (work / "encoder").makedirs()
        for name in encoder_files(variant):
            source.put(str(encoder / name), name)
    job = EmbedJob(work, source, variant, threads or executors.task_threads(executor, workers), batch_size)
    with executors.open_executor(executor, workers) as pool:
        embedded = sum(tqdm(pool.map(partial(embed_part, job), todo), total=len(todo), desc=f"embed {out.name}",
                            unit="part", disable=None))
    dim = EncoderConfig.read(encoder).dim
    assemble(work, [part_name(part) for part in parts], (len(documents), dim), out)
    work.remove_all()
    if executor.work_url is None:
        default_root.remove_all()
    return embedded


def assemble(work: WorkDir, names: list[str], shape: tuple[int, int], out: Path) -> None:
    """The parts, in order, written into the .npy `out`."""
    with npy_writer(out, shape) as array:
        start = 0
        for name in names:
            vectors = work.read_npy(name)
            if vectors.shape[1:] != shape[1:]:
                raise ValueError(f"{work.url}/{name}: vectors of shape {vectors.shape}, expected (n, {shape[1]})")
            array[start:start + len(vectors)] = vectors
            start += len(vectors)
        if start != shape[0]:
            raise ValueError(f"{work.url}: the parts hold {start} rows, not {shape[0]}")


def fingerprint(*paths: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        with path.open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


def settings(params: dict[str, Any], source: str) -> tuple[Variant, int, int, int | None]:
    """(variant, batch_size, workers, threads) of the `embed` section, checked."""
    if params["variant"] not in VARIANTS:
        raise ValueError(f"{source}.variant must be one of {VARIANTS}, not {params['variant']!r}")
    batch_size, workers = int(params["batch_size"]), int(params.get("workers") or 1)
    threads = None if params.get("threads") is None else int(params["threads"])
    if min(batch_size, workers, threads or 1) < 1:
        raise ValueError(f"{source}: batch_size, workers and threads must be >= 1")
    return params["variant"], batch_size, workers, threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec embed", description=__doc__)
    parser.add_argument("--documents", type=Path, required=True, help="pairs stage documents.parquet")
    parser.add_argument("--encoder", type=Path, required=True, help="ONNX encoder folder (quantize stage)")
    parser.add_argument("--out", type=Path, required=True, help="embeddings .npy to write")
    parser.add_argument("--report", type=Path, required=True, help="embedding throughput (JSON, DVC metrics)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    variant, batch_size, workers, threads = settings(load_section("embed", args.params), f"{args.params}: embed")
    executor = executors.load(args.params)
    documents = conform(pq.read_table(args.documents), DOCUMENTS, str(args.documents)).column("document")
    key = fingerprint(args.documents, args.encoder / model_file(variant), extra=f"{variant}:{batch_size}")
    start = time.perf_counter()
    embedded = embed(documents, args.encoder, variant, batch_size, args.out, key, executor, workers, threads)
    seconds = time.perf_counter() - start
    dim = EncoderConfig.read(args.encoder).dim
    log.info("embedded %d of %d documents in %.1f s", embedded, len(documents), seconds)
    write_json({"documents": len(documents), "dim": dim, "variant": variant, "seconds": seconds,
                "embedded_this_run": embedded, "documents_per_s": embedded / seconds if seconds else None},
               args.report)
    return 0
