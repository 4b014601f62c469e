"""semrec demo: the dashboard with the reference paper's A/B on the same queries: the legacy PyTorch
endpoint (the fine-tuned model in FP32 + exact search) beside the snapshot's ONNX INT8 + HNSW.

    semrec demo --root published --catalog movies --compare-pytorch models/movies/finetuned
    # then open http://127.0.0.1:8000/

The PyTorch system encodes each query with sentence-transformers (FP32, L2-normalised: the pipeline's one
encode, pipelines.retrieval.encode) and ranks every catalog document exactly (pipelines.retrieval.exact); the
documents (`--documents`, by default the pairs stage's documents.parquet of the catalog) are embedded
once at start. The page opens with the snapshot's dense mode and PyTorch side by side, and the live
panel times both the same way. The snapshot is pinned (no LATEST polling), so its item rows stay
those the PyTorch side was built against. Torch is imported here, never in serving/.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from pipelines.retrieval.encode import encode, load_model
from pipelines.retrieval.exact import exact_index, top
from serving.arguments import add_reader_arguments
from serving.dashboard import SnapshotSystem, System, snapshot_systems
from serving.hits import Hit, hits_from
from serving.reader import Reader

log = logging.getLogger("semrec.demo")


class PytorchSystem:
    """Exact inner-product search over FP32 sentence-transformers embeddings of the catalog documents."""

    label = "PyTorch FP32 + exact search"

    def __init__(self, model: Any, reader: Reader, item_ids: list[str], documents: list[str], batch_size: int = 64):
        index = reader.snapshot.index
        try:  # every document's item must be in the snapshot: its metadata is what a hit shows
            located = np.array([index.locate(i) for i in item_ids], dtype=np.int64).reshape(-1, 2)
        except KeyError as err:
            raise ValueError(f"the documents name an item the snapshot {reader.manifest.snapshot_id} lacks: "
                             f"{err}") from err
        self.model, self.reader = model, reader
        self.shards, self.rows = located[:, 0], located[:, 1]
        self.row_of = {item_id: row for row, item_id in enumerate(item_ids)}
        self.index = exact_index(item_ids, encode(model, documents, batch_size))

    def hits(self, scores: np.ndarray, k: int) -> list[Hit]:
        best = top(scores, k)
        return hits_from(self.reader.snapshot.index.metadata(self.shards[best], self.rows[best]), scores[best])

    def search(self, text: str, k: int) -> list[Hit]:
        return self.hits(self.index.scores(encode(self.model, [text], 1))[0], k)

    def more_like(self, item_id: str, k: int) -> list[Hit]:
        row = self.row_of[item_id]  # KeyError: no such item
        scores = self.index.scores(self.index.vectors[row:row + 1])[0]
        scores[row] = -np.inf
        return self.hits(scores, min(k, len(scores) - 1))


def demo_systems(reader: Reader, pytorch: System) -> dict[str, System]:
    """The snapshot's dense mode (ONNX INT8 + HNSW) and PyTorch first, so the page opens on the paper's A/B."""
    return {"dense": SnapshotSystem(reader, "dense", "shipped"), "pytorch": pytorch, **snapshot_systems(reader)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_reader_arguments(parser, "a snapshot id, or 'latest' (read once: no polling)")
    parser.add_argument("--compare-pytorch", required=True, type=Path, metavar="MODEL",
                        help="a sentence-transformers folder, e.g. models/movies/finetuned")
    parser.add_argument("--documents", type=Path,
                        help="documents.parquet (item_id, document) (default: data/<catalog>/pairs/documents.parquet)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import uvicorn

    from serving.http import create_app

    reader = Reader.open(args.root, args.catalog, args.version, args.cache)
    documents = pq.read_table(args.documents or Path("data") / args.catalog / "pairs" / "documents.parquet",
                              columns=["item_id", "document"])
    started = time.perf_counter()
    pytorch = PytorchSystem(load_model(args.compare_pytorch), reader,
                            documents.column("item_id").to_pylist(), documents.column("document").to_pylist())
    log.info("PyTorch side: %d documents embedded in %.1f s", len(pytorch.row_of), time.perf_counter() - started)
    uvicorn.run(create_app(reader, demo_systems(reader, pytorch)), host=args.host, port=args.port)
    return 0
