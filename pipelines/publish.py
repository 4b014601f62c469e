"""publish stage: package a catalog's index as a versioned snapshot and move LATEST to it.

    semrec publish --catalog fashion --root published ...        # build, gate, upload, swap, prune
    semrec publish rollback --to 20260101T000000000000Z-ab12cd34 --catalog fashion --root published

A snapshot `<root>/<catalog>/<id>/` holds the index shards, the INT8 encoder, the BM25 index, the
evaluation metrics, with --intent the folder `Reader.ask` reads (movies: `intent/`), and
`manifest.json` (uploaded last; every other file's sha256). LATEST then moves by compare-and-swap, so
of two concurrent publishers exactly one wins; the loser's snapshot stays complete but not live. The
quality gate refuses a snapshot whose gate metric is below the live one's by more than the
tolerance, unless --force. `<root>` is any fsspec URL; S3 credentials and endpoint come from the
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), never from params.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common.atomic import write_json
from pipelines.common.params import load_section
from pipelines.hybrid_weight import best_weight, recall_by_weight
from serving.conversation.ask import Conversation
from serving.encoder import CONFIG_FILE, TOKENIZER_FILE, Encoder, EncoderConfig, model_file
from serving.hybrid import build_bm25, load_bm25, save_bm25
from serving.manifest import MANIFEST_NAME, Manifest, ManifestError, check_name, describe_folder
from serving.shards import ShardedIndex
from serving.snapshot import BM25_DIR, ENCODER_DIR, INDEX_DIR, INTENT_DIR
from serving.store import Pointer, PointerConflict, Store

log = logging.getLogger("semrec.publish")

METRICS_NAME = "metrics.json"


class GateRefused(RuntimeError):
    """The new snapshot's gate metric is below the live snapshot's by more than the tolerance."""


@dataclass(frozen=True)
class Gate:
    metric: tuple[str, ...]  # key path into metrics.json
    tolerance: float

    def value(self, metrics: dict[str, Any], source: str) -> float:
        node: Any = metrics
        for key in self.metric:
            if not isinstance(node, dict) or key not in node:
                raise KeyError(f"{source}: no gate metric {'/'.join(self.metric)} (missing {key!r})")
            node = node[key]
        return float(node)

    def check(self, new: dict[str, Any], live: dict[str, Any] | None, live_id: str | None) -> dict[str, Any]:
        """Raise GateRefused when `new` is worse than `live` beyond the tolerance; return the figures."""
        new_value = self.value(new, "new metrics")
        figures: dict[str, Any] = {"metric": "/".join(self.metric), "new": new_value, "live": None,
                                   "live_snapshot": live_id, "tolerance": self.tolerance}
        if live is None:
            return figures
        try:
            figures["live"] = live_value = self.value(live, f"live snapshot {live_id}")
        except KeyError as err:
            log.warning("%s: gate skipped", err)
            return figures
        if new_value < live_value - self.tolerance:
            raise GateRefused(f"{figures['metric']} {new_value:.4f} is below the live snapshot {live_id}'s "
                              f"{live_value:.4f} by more than {self.tolerance} (use --force to publish anyway)")
        return figures


def new_snapshot_id(files_digest: str, now: datetime | None = None) -> str:
    """Sortable by time: `YYYYmmddTHHMMSSffffffZ-<8 hex of the content>`."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{files_digest[:8]}"


def source_revision() -> dict[str, str]:
    """The git commit (with `-dirty` for uncommitted changes) and the sha256 of dvc.lock."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
        rev += "-dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    lock = Path("dvc.lock")
    lock_hash = hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else "none"
    return {"git_rev": rev, "dvc_lock_sha256": lock_hash}


def write_manifest(folder: Path, catalog: str, fields: dict[str, Any]) -> Manifest:
    """Describe every file of `folder`, name the snapshot, and write `folder/manifest.json`."""
    files = describe_folder(folder)
    digest = hashlib.sha256("".join(f"{f.path}\0{f.sha256}\n" for f in files).encode()).hexdigest()
    now = datetime.now(UTC)
    manifest = Manifest(catalog=catalog, snapshot_id=new_snapshot_id(digest, now),
                        created_at=now.isoformat(timespec="seconds"), files=files, **fields)
    manifest.validate()
    (folder / MANIFEST_NAME).write_bytes(manifest.to_json())
    return manifest


def upload(store: Store, folder: Path, manifest: Manifest) -> None:
    """Copy every listed file, then the manifest last: a snapshot without a manifest is incomplete."""
    catalog, snapshot_id = manifest.catalog, manifest.snapshot_id
    if store.exists(catalog, snapshot_id, MANIFEST_NAME):
        raise FileExistsError(f"{store.url}/{catalog}/{snapshot_id} is already published")
    for entry in manifest.files:
        store.put_file(folder / entry.path, catalog, snapshot_id, entry.path)
    store.put_file(folder / MANIFEST_NAME, catalog, snapshot_id, MANIFEST_NAME)


def live_metrics(store: Store, catalog: str, live: Pointer | None) -> dict[str, Any] | None:
    return None if live is None else json.loads(store.read(catalog, live.snapshot_id, METRICS_NAME))


def publish_folder(store: Store, folder: Path, manifest: Manifest, gate: Gate, force: bool) -> dict[str, Any]:
    """Gate against the live snapshot, upload, and swap LATEST from the live snapshot we gated against."""
    catalog = manifest.catalog
    live = store.latest(catalog)
    new_metrics = json.loads((folder / METRICS_NAME).read_text(encoding="utf-8"))
    try:
        figures = gate.check(new_metrics, live_metrics(store, catalog, live), live and live.snapshot_id)
    except GateRefused:
        if not force:
            raise
        log.warning("quality gate overridden by --force")
        figures = {"metric": "/".join(gate.metric), "forced": True}
    upload(store, folder, manifest)
    store.swap_latest(catalog, manifest.snapshot_id, live)  # PointerConflict: another publisher won
    log.info("published %s/%s/%s", store.url, catalog, manifest.snapshot_id)
    return figures


def prune(store: Store, catalog: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` complete snapshots; never the live one, never incomplete ones."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, not {keep}")
    live = store.latest(catalog)
    doomed = [s for s in store.snapshots(catalog)[:-keep] if live is None or s != live.snapshot_id]
    for snapshot_id in doomed:
        store.delete_snapshot(catalog, snapshot_id)
        log.info("retention: deleted %s/%s/%s", store.url, catalog, snapshot_id)
    return doomed


def rollback(store: Store, catalog: str, to: str) -> Pointer | None:
    """Point LATEST back at an existing complete snapshot; returns the pointer it replaced."""
    check_name(to, "snapshot id")
    if to not in store.snapshots(catalog):
        raise ManifestError(f"{store.url}/{catalog}/{to}: no complete snapshot to roll back to "
                            f"(have: {', '.join(store.snapshots(catalog)) or 'none'})")
    manifest = Manifest.from_json(store.read(catalog, to, MANIFEST_NAME), f"{store.url}/{catalog}/{to}")
    sizes = store.file_sizes(catalog, to)
    for entry in manifest.files:
        if sizes.get(entry.path) != entry.bytes:
            raise ManifestError(f"{store.url}/{catalog}/{to}: {entry.path} is missing or not {entry.bytes} bytes")
    live = store.latest(catalog)
    store.swap_latest(catalog, to, live)
    return live


def stage(folder: Path, index_dir: Path, encoder_dir: Path, documents: dict[str, str], metrics: Path) -> ShardedIndex:
    """Lay out a snapshot in `folder`: index, INT8 encoder, BM25 over the documents in shard order, metrics."""
    shutil.copytree(index_dir, folder / INDEX_DIR)
    (folder / ENCODER_DIR).mkdir()
    for name in (model_file("int8"), TOKENIZER_FILE, CONFIG_FILE):
        shutil.copy2(encoder_dir / name, folder / ENCODER_DIR / name)
    shutil.copy2(metrics, folder / METRICS_NAME)
    index = ShardedIndex.open(folder / INDEX_DIR)
    ids = global_item_ids(index)
    missing = sorted(set(ids) - set(documents))
    if missing:
        raise KeyError(f"{index_dir}: {len(missing)} indexed item(s) have no document, e.g. {missing[:5]}")
    save_bm25(build_bm25([documents[i] for i in ids]), folder / BM25_DIR)
    return index


def stage_intent(source: Path, folder: Path) -> str:
    """Copy the intent stage's folder into the snapshot as intent/, and check that `ask` can load it;
    returns the extractor it serves."""
    shutil.copytree(source, folder / INTENT_DIR)
    try:
        return Conversation.load(folder / INTENT_DIR).kind
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"--intent {source}: not an intent folder `ask` can load ({err})") from err


def global_item_ids(index: ShardedIndex) -> list[str]:
    """Item ids by global row: shard 0's rows, then shard 1's, ... (the BM25 document order)."""
    return [i for shard in index.shards for i in shard.metadata.column("item_id").to_pylist()]


def sample_pairs(pairs: pa.Table, limit: int, seed: int) -> pa.Table:
    """Up to `limit` rows, a seeded sample in file order."""
    return pairs.take(sorted(random.Random(seed).sample(range(pairs.num_rows), min(limit, pairs.num_rows))))


def measure_hybrid(pairs: pa.Table, encoder: Encoder, embeddings: np.ndarray, bm25: Any,
                   row_of: dict[str, int], weights: list[float], k: int) -> dict[float, float]:
    queries = pairs.column("query").to_pylist()
    positives = np.array([row_of[i] for i in pairs.column("item_id").to_pylist()])
    return recall_by_weight(queries, encoder.encode(queries), positives, embeddings, bm25, weights, k)


def choose_bm25_weight(snapshot: Path, index: ShardedIndex, documents: pa.Table, embeddings: np.ndarray,
                       validation: pa.Table, test: pa.Table | None, params: dict[str, Any]) -> dict[str, Any]:
    """Pick the BM25 weight on validation pairs; report dense vs hybrid Recall@10 there and on `test`.

    `embeddings` row i embeds `documents` row i (the embed stage's contract)."""
    if len(embeddings) != documents.num_rows:
        raise ValueError(f"{len(embeddings)} embeddings for {documents.num_rows} documents")
    document_row = {item_id: row for row, item_id in enumerate(documents.column("item_id").to_pylist())}
    ids = global_item_ids(index)
    row_of = {item_id: row for row, item_id in enumerate(ids)}
    by_global_row = embeddings[[document_row[i] for i in ids]]
    encoder = Encoder.load(snapshot / ENCODER_DIR, "int8")
    bm25 = load_bm25(snapshot / BM25_DIR)
    weights, k = [float(w) for w in params["weights"]], int(params["recall_at"])
    chosen_on = sample_pairs(validation, int(params["validation_pairs"]), int(params["seed"]))
    recalls = measure_hybrid(chosen_on, encoder, by_global_row, bm25, row_of, weights, k)
    weight = best_weight(recalls)
    report: dict[str, Any] = {"bm25_weight": weight, "recall_at": k, "validation_pairs": chosen_on.num_rows,
                              "validation_recall": {str(w): r for w, r in recalls.items()},
                              "validation_gain": recalls[weight] - recalls.get(0.0, recalls[weight])}
    test = None if test is None else sample_pairs(test, int(params["test_pairs"]), int(params["seed"]))
    if test is not None and test.num_rows:  # reported only: the weight never sees the test split
        on_test = measure_hybrid(test, encoder, by_global_row, bm25, row_of, sorted({0.0, weight}), k)
        report.update({"test_pairs": test.num_rows, "test_dense_recall": on_test[0.0],
                       "test_hybrid_recall": on_test[weight]})
    return report


def publish(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    store = Store(args.root)
    gate = Gate(tuple(params["gate"]["metric"]), float(params["gate"]["tolerance"]))
    documents = pq.read_table(args.documents, columns=["item_id", "document"])
    embeddings = np.load(args.embeddings, mmap_mode="r", allow_pickle=False)
    validation = pq.read_table(args.validation, columns=["query", "item_id"])
    test = pq.read_table(args.test, columns=["query", "item_id"]) if args.test else None
    with tempfile.TemporaryDirectory(prefix="semrec-publish-") as tmp:
        folder = Path(tmp) / "snapshot"
        folder.mkdir()
        index = stage(folder, args.index, args.encoder,
                      dict(zip(documents.column("item_id").to_pylist(), documents.column("document").to_pylist())),
                      args.metrics)
        extractor = stage_intent(args.intent, folder) if args.intent else None
        hybrid = choose_bm25_weight(folder, index, documents, embeddings, validation, test, params["hybrid"])
        encoder = EncoderConfig.read(folder / ENCODER_DIR)
        manifest = write_manifest(folder, args.catalog, {
            **source_revision(), "embedding_model": encoder.model, "dim": index.dim,
            "metric": index.manifest.metric, "ef_search": index.manifest.ef_search,
            "bm25_weight": hybrid["bm25_weight"], "extra": {"hybrid": hybrid}})
        gate_figures = publish_folder(store, folder, manifest, gate, args.force)
    pruned = prune(store, args.catalog, int(params["keep"]))
    return {"snapshot_id": manifest.snapshot_id, "root": store.url, "items": len(index),
            "files": len(manifest.files), "bytes": sum(f.bytes for f in manifest.files),
            "gate": gate_figures, "hybrid": hybrid, "ask_extractor": extractor, "pruned": pruned}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="semrec publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--root", help="fsspec URL of the published tree (default: params publish.root)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    if argv[:1] == ["rollback"]:
        parser.prog = "semrec publish rollback"
        parser.add_argument("--to", required=True, help="the snapshot id LATEST should point to")
        args = parser.parse_args(argv[1:])
        args.command = "rollback"
        return args
    parser.add_argument("--index", type=Path, required=True, help="the index stage's folder")
    parser.add_argument("--encoder", type=Path, required=True, help="folder with model_int8.onnx, tokenizer.json")
    parser.add_argument("--documents", type=Path, required=True, help="documents.parquet (item_id, document)")
    parser.add_argument("--embeddings", type=Path, required=True, help="embeddings.npy, row i = documents row i")
    parser.add_argument("--validation", type=Path, required=True,
                        help="pairs the hybrid weight is chosen on (the pairs stage's validation.parquet)")
    parser.add_argument("--test", type=Path, help="pairs the hybrid gain is reported on (never chosen on)")
    parser.add_argument("--metrics", type=Path, required=True, help="the evaluate stage's metrics.json")
    parser.add_argument("--intent", type=Path,
                        help="the intent stage's folder (movies): shipped as intent/, so the snapshot answers ask")
    parser.add_argument("--report", type=Path, help="write what was published here (JSON, DVC metrics)")
    parser.add_argument("--force", action="store_true", help="publish even if the quality gate refuses")
    args = parser.parse_args(argv)
    args.command = "publish"
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    params = load_section("publish", args.params)
    args.root = args.root or params["root"]
    check_name(args.catalog, "catalog")
    try:
        if args.command == "rollback":
            replaced = rollback(Store(args.root), args.catalog, args.to)
            print(f"{args.root}/{args.catalog}/LATEST: {replaced.snapshot_id if replaced else 'none'} -> {args.to}")
            return 0
        report = publish(args, params)
    except (GateRefused, PointerConflict, ManifestError) as err:
        print(f"semrec publish: {err}", file=sys.stderr)
        return 1
    if args.report:
        write_json(report, args.report)
    print(f"published {report['root']}/{args.catalog}/{report['snapshot_id']} ({report['items']} items, "
          f"BM25 weight {report['hybrid']['bm25_weight']})")
    return 0
