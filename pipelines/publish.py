"""publish stage: package a catalog's index as a versioned snapshot and move LATEST to it.

    semrec publish --catalog fashion --root published ...        # build, gate, upload, swap, prune, gc
    semrec publish rollback --to 20260101T000000000000Z-ab12cd34 --catalog fashion --root published
    semrec publish gc --catalog fashion --root published --grace-hours 24   # crash debris only

A snapshot `<root>/<catalog>/<id>/` holds the index shards, the INT8 encoder, the BM25 index, the
evaluation metrics, the popularity prior's counts (`prior/`, --popularity) when the fusion stage tuned a
prior (fusion.json, pipelines.retrieval.fusion_report), with --intent the folder
`Reader.ask` reads (movies: `intent/`), and
`manifest.json` (uploaded last; every other file's sha256). LATEST then moves by compare-and-swap, so
of two concurrent publishers exactly one wins; the loser's snapshot stays complete but not live. The
quality gate refuses a snapshot whose gate metric is below the live one's by more than the
tolerance, unless --force. `<root>` is any fsspec URL; S3 credentials and endpoint come from the
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), never from params. Rollback, retention and
gc live in pipelines/lifecycle.py.

LATEST moves only when `publish.enabled` is true and the stage is not running under `dvc exp run`
(DVC sets DVC_EXP_NAME there): an experiment builds and reports its snapshot but never goes live.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from tqdm import tqdm

from pipelines.common.atomic import write_json
from pipelines.common.params import load_section, typed_section
from pipelines.lifecycle import STAGING_PREFIX, gc, gc_staging, prune, rollback
from pipelines.retrieval.fusion_report import FusionReport
from pipelines.retrieval.shipped import bm25_in_index_order, positives_in_index_order
from serving.arguments import location_argument, name_argument, snapshot_argument
from serving.bm25 import save_bm25
from serving.conversation.ask import Conversation
from serving.encoder import CONFIG_FILE, TOKENIZER_FILE, EncoderConfig, model_file
from serving.fusion import Fusion
from serving.manifest import MANIFEST_NAME, Manifest, describe_folder
from serving.prior import save_positives
from serving.shards import ShardedIndex
from serving.snapshot import BM25_DIR, ENCODER_DIR, INDEX_DIR, INTENT_DIR, PRIOR_DIR
from serving.store import BadPointer, Pointer, PointerConflict, Store

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
    """Copy every listed file, then the manifest last: a snapshot without a manifest is incomplete.
    On a local folder the files reach the disk before the manifest, and the manifest before LATEST."""
    catalog, snapshot_id = manifest.catalog, manifest.snapshot_id
    if store.exists(catalog, snapshot_id, MANIFEST_NAME):
        raise FileExistsError(f"{store.url}/{catalog}/{snapshot_id} is already published")
    for entry in tqdm(manifest.files, desc=f"upload {snapshot_id}", unit="file", disable=None):
        store.put_file(folder / entry.path, catalog, snapshot_id, entry.path)
    store.make_durable(catalog, snapshot_id)
    # whole or not at all: a publisher killed while copying it must not leave an empty manifest that looks complete
    store.put_bytes((folder / MANIFEST_NAME).read_bytes(), catalog, snapshot_id, MANIFEST_NAME)
    store.make_durable(catalog, snapshot_id, MANIFEST_NAME)


def live_metrics(store: Store, catalog: str, live: Pointer) -> dict[str, Any]:
    """The live snapshot's metrics.json; GateRefused when it cannot be read (the gate has nothing to compare)."""
    try:
        return json.loads(store.read(catalog, live.snapshot_id, METRICS_NAME))
    except (FileNotFoundError, ValueError) as err:
        raise GateRefused(f"cannot read the live snapshot {live.snapshot_id}'s {METRICS_NAME} ({err}), so the quality "
                          "gate has nothing to compare with: roll back, or use --force to publish anyway") from None


def live_pointer(store: Store, catalog: str, force: bool) -> Pointer | None:
    """LATEST as read before the upload; with --force also one that names no snapshot (the swap replaces it)."""
    try:
        return store.latest(catalog)
    except BadPointer as err:
        if not force or err.pointer is None:
            raise
        log.warning("%s: replacing it (--force)", err)
        return err.pointer


def publish_folder(store: Store, folder: Path, manifest: Manifest, gate: Gate, force: bool) -> dict[str, Any]:
    """Gate against the live snapshot (never read with --force), upload, and swap LATEST from the live pointer
    read before the upload."""
    catalog = manifest.catalog
    live = live_pointer(store, catalog, force)
    new_metrics = json.loads((folder / METRICS_NAME).read_text(encoding="utf-8"))
    if force:
        log.warning("quality gate skipped: --force")
        figures = {"metric": "/".join(gate.metric), "new": gate.value(new_metrics, "new metrics"), "forced": True}
    else:
        live_values = None if live is None else live_metrics(store, catalog, live)
        figures = gate.check(new_metrics, live_values, live and live.snapshot_id)
    upload(store, folder, manifest)
    store.swap_latest(catalog, manifest.snapshot_id, live)  # PointerConflict: another publisher won
    log.info("published %s/%s/%s", store.url, catalog, manifest.snapshot_id)
    return figures


def stage(folder: Path, index_dir: Path, encoder_dir: Path, documents: dict[str, str], metrics: Path,
          popularity: Path | None = None) -> ShardedIndex:
    """Lay out a snapshot in `folder`: index, INT8 encoder, BM25 over the documents in shard order, metrics,
    and the popularity prior's counts in shard order when given."""
    shutil.copytree(index_dir, folder / INDEX_DIR)
    (folder / ENCODER_DIR).mkdir()
    for name in (model_file("int8"), TOKENIZER_FILE, CONFIG_FILE):
        shutil.copy2(encoder_dir / name, folder / ENCODER_DIR / name)
    shutil.copy2(metrics, folder / METRICS_NAME)
    index = ShardedIndex.open(folder / INDEX_DIR)
    save_bm25(bm25_in_index_order(index, documents, str(index_dir)), folder / BM25_DIR)
    if popularity:
        save_positives(positives_in_index_order(index, popularity), folder / PRIOR_DIR)
    return index


def stage_intent(source: Path, folder: Path) -> str:
    """Copy the intent stage's folder into the snapshot as intent/, and check that `ask` can load it;
    returns the extractor it serves."""
    shutil.copytree(source, folder / INTENT_DIR)
    try:
        return Conversation.load(folder / INTENT_DIR).kind
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"--intent {source}: not an intent folder `ask` can load ({err})") from err


@dataclass(frozen=True)
class PublishParams:
    """params `publish`."""
    enabled: bool  # false: build and report the snapshot, never move LATEST
    root: str  # fsspec URL of the published tree
    keep: int  # complete snapshots kept per catalog (the live one always stays)
    gc_grace_hours: float  # crash debris older than this is deleted
    gate: Gate

    @classmethod
    def from_section(cls, section: object) -> PublishParams:
        return typed_section(cls, section, "publish")


def publish(args: argparse.Namespace, params: PublishParams) -> dict[str, Any]:
    store = Store(args.root)
    documents = pq.read_table(args.documents, columns=["item_id", "document"])
    choice = FusionReport.read(args.fusion)
    choice.check_counts(args.popularity, str(args.fusion))
    fusion = choice.fusion
    enabled, why_not = publishing_enabled(params)
    with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX) as tmp:
        folder = Path(tmp) / "snapshot"
        folder.mkdir()
        index = stage(folder, args.index, args.encoder,
                      dict(zip(documents.column("item_id").to_pylist(), documents.column("document").to_pylist())),
                      args.metrics, args.popularity)
        extractor = stage_intent(args.intent, folder) if args.intent else None
        encoder = EncoderConfig.read(folder / ENCODER_DIR)
        manifest = write_manifest(folder, args.catalog, {
            **source_revision(), "embedding_model": encoder.model, "dim": index.dim,
            "metric": index.manifest.metric, "ef_search": index.manifest.ef_search,
            "fusion": fusion, "extra": {"fusion": choice.chosen_on()}})
        report = {"published": enabled, "snapshot_id": manifest.snapshot_id, "root": store.url,
                  "items": len(index), "files": len(manifest.files),
                  "bytes": sum(f.bytes for f in manifest.files), "fusion": asdict(fusion),
                  "ask_extractor": extractor}
        if not enabled:
            log.warning("not published: %s", why_not)
            return {**report, "not_published_because": why_not}
        report["gate"] = publish_folder(store, folder, manifest, params.gate, args.force)
    return {**report, **housekeeping(store, args.catalog, params)}


def publishing_enabled(params: PublishParams) -> tuple[bool, str]:
    """(may this run move LATEST, why not). Never under `dvc exp run`, which sets DVC_EXP_NAME."""
    if os.environ.get("DVC_EXP_NAME"):
        return False, (f"running under `dvc exp run` (experiment {os.environ['DVC_EXP_NAME']}): experiments "
                       "never move LATEST; `dvc exp apply` it, then `dvc repro publish`")
    if not params.enabled:
        return False, "params publish.enabled is false"
    return True, ""


def housekeeping(store: Store, catalog: str, params: PublishParams) -> dict[str, Any]:
    """Retention, then crash debris. Runs after LATEST moved, so the publish stands whatever happens here."""
    grace_s = params.gc_grace_hours * 3600
    try:
        return {"pruned": prune(store, catalog, params.keep), "gc": gc(store, catalog, grace_s),
                "gc_staging": [str(p) for p in gc_staging(grace_s)]}
    except Exception as err:  # noqa: BLE001 - a retention failure must not turn a done publish into exit 1
        log.warning("%s/%s: retention or gc failed, the publish stands: %s", store.url, catalog, err)
        return {"housekeeping_error": f"{type(err).__name__}: {err}"}


def hours_argument(value: str) -> float:
    """argparse `type=` for --grace-hours: a finite number >= 0 (NaN would make every age comparison false)."""
    try:
        hours = float(value)
    except ValueError:
        hours = math.nan
    if not (math.isfinite(hours) and hours >= 0):
        raise argparse.ArgumentTypeError(f"{value!r} is not a finite number of hours >= 0")
    return hours


def parse_args(argv: list[str]) -> argparse.Namespace:
    command = argv[0] if argv[:1] in (["rollback"], ["gc"]) else "publish"
    parser = argparse.ArgumentParser(prog="semrec publish" + ("" if command == "publish" else f" {command}"),
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True, type=name_argument)
    parser.add_argument("--root", type=location_argument,
                        help="fsspec URL of the published tree (default: params publish.root)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    if command == "rollback":
        parser.add_argument("--to", required=True, type=snapshot_argument,
                            help="the snapshot id LATEST should point to")
    elif command == "gc":
        parser.add_argument("--grace-hours", type=hours_argument, help="only debris older than this (default: "
                            "params publish.gc_grace_hours)")
    else:
        parser.add_argument("--index", type=Path, required=True, help="the index stage's folder")
        parser.add_argument("--models", type=Path,
                            help="the catalog's models folder: its onnx/ is --encoder, and its intent/, where a stage "
                                 "made one (movies), is --intent")
        parser.add_argument("--encoder", type=Path, help="folder with model_int8.onnx, tokenizer.json")
        parser.add_argument("--documents", type=Path, required=True, help="documents.parquet (item_id, document)")
        parser.add_argument("--fusion", type=Path, required=True,
                            help="the fusion stage's fusion.json: the default search method and weight")
        parser.add_argument("--metrics", type=Path, required=True, help="the evaluate stage's metrics.json")
        parser.add_argument("--popularity", type=Path,
                            help="the pairs stage's popularity.parquet: shipped as prior/ (serving.prior)")
        parser.add_argument("--intent", type=Path,
                            help="the intent stage's folder (movies): shipped as intent/, so the snapshot answers ask")
        parser.add_argument("--report", type=Path, help="write what was published here (JSON, DVC metrics)")
        parser.add_argument("--force", action="store_true", help="publish even if the quality gate refuses")
    args = parser.parse_args(argv if command == "publish" else argv[1:])
    args.command = command
    if command == "publish" and args.models:
        args.encoder = args.encoder or args.models / "onnx"
        if args.intent is None and (args.models / INTENT_DIR).is_dir():
            args.intent = args.models / INTENT_DIR
    if command == "publish" and args.encoder is None:
        parser.error("give --encoder or --models")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    params = PublishParams.from_section(load_section("publish", args.params))
    args.root = args.root or params.root
    try:
        if args.command == "rollback":
            replaced = rollback(Store(args.root), args.catalog, args.to)
            print(f"{args.root}/{args.catalog}/LATEST: {replaced.snapshot_id} -> {args.to}")
            return 0
        if args.command == "gc":
            grace_s = 3600 * (params.gc_grace_hours if args.grace_hours is None else args.grace_hours)
            deleted = gc(Store(args.root), args.catalog, grace_s) + [str(p) for p in gc_staging(grace_s)]
            print(f"{args.root}/{args.catalog}: deleted {len(deleted)} piece(s) of crash debris"
                  + "".join(f"\n  {name}" for name in deleted))
            return 0
        report = publish(args, params)
    except (GateRefused, PointerConflict) as err:
        print(f"semrec publish: {err}", file=sys.stderr)
        return 1
    if args.report:
        write_json(report, args.report)
    verb = "published" if report["published"] else "built, NOT published,"
    print(f"{verb} {report['root']}/{args.catalog}/{report['snapshot_id']} ({report['items']} items, "
          f"search: {Fusion(**report['fusion']).name()})")
    return 0
