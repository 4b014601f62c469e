"""A published tree after upload: rollback, retention (prune) and crash-debris collection (gc).

Safe against each other and against concurrent publishers, with no lock beyond LATEST's
compare-and-swap (S3 has no other):
- prune never deletes LATEST's target: it hides a doomed snapshot first (its manifest goes, so
  listings and readers see it as incomplete), re-reads LATEST, and puts the manifest back when a
  rollback chose that snapshot meanwhile. A snapshot another pruner deleted first counts as deleted.
- rollback reads LATEST, verifies every file of the target (size and sha256), swaps from the LATEST
  it read, and checks the target still has its manifest: if a prune took it between check and
  swap, LATEST goes back and the rollback fails (retry it).
- gc deletes what crashes leave behind once it is older than a grace period: snapshot folders
  without a manifest (a publisher or pruner killed mid-way), `.LATEST.*` temp files, and this
  machine's `semrec-publish-*` staging folders.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from serving.errors import NotFound
from serving.manifest import MANIFEST_NAME, check_name
from serving.store import POINTER_NAME, Pointer, PointerConflict, Store, is_snapshot_name

log = logging.getLogger("semrec.publish")

STAGING_PREFIX = "semrec-publish-"  # the publisher's local temp folders (tempfile.gettempdir())
_POINTER_LOCK = f".{POINTER_NAME}.lock"  # held by local swaps: deleting it would break their mutual exclusion


def is_live(store: Store, catalog: str, snapshot_id: str) -> bool:
    live = store.latest(catalog)
    return live is not None and live.snapshot_id == snapshot_id


def prune(store: Store, catalog: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` complete snapshots, never LATEST's target; returns the deleted."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, not {keep}")
    deleted = []
    for snapshot_id in store.snapshots(catalog)[:-keep]:
        if is_live(store, catalog, snapshot_id):
            continue
        try:
            manifest = store.read(catalog, snapshot_id, MANIFEST_NAME)
        except FileNotFoundError:
            continue  # another pruner is deleting it
        store.delete(catalog, snapshot_id, MANIFEST_NAME)  # hidden: no reader or rollback can pick it now
        if is_live(store, catalog, snapshot_id):  # a rollback verified and chose it before it was hidden
            store.put_bytes(manifest, catalog, snapshot_id, MANIFEST_NAME)
            log.info("retention: kept %s/%s/%s, LATEST moved to it", store.url, catalog, snapshot_id)
            continue
        store.delete_snapshot(catalog, snapshot_id)
        deleted.append(snapshot_id)
        log.info("retention: deleted %s/%s/%s", store.url, catalog, snapshot_id)
    return deleted


def rollback(store: Store, catalog: str, to: str) -> Pointer:
    """Point LATEST at the complete, verified snapshot `to`; returns the pointer it replaced."""
    check_name(to, "snapshot id")
    live = store.latest(catalog)
    if live is None:
        raise NotFound(f"{store.url}/{catalog}: nothing published yet, so nothing to roll back")
    try:
        store.verify(catalog, to)  # every file's size and sha256, streamed from the store
    except NotFound:
        raise NotFound(f"{store.url}/{catalog}/{to}: no complete snapshot to roll back to "
                       f"(have: {', '.join(store.snapshots(catalog)) or 'none'})") from None
    store.swap_latest(catalog, to, live)  # PointerConflict if LATEST moved since we read it
    if not store.exists(catalog, to, MANIFEST_NAME):  # a prune hid or deleted it between verify and swap
        now = store.latest(catalog)
        if now is not None and now.snapshot_id == to:
            store.swap_latest(catalog, live.snapshot_id, now)
        raise PointerConflict(f"{store.url}/{catalog}/{to} was pruned while rolling back; LATEST is back at "
                              f"{live.snapshot_id}: retry the rollback")
    return live


def gc(store: Store, catalog: str, grace_s: float, now: float | None = None) -> list[str]:
    """Delete `<root>/<catalog>/` debris older than `grace_s` seconds; returns the names deleted."""
    now = time.time() if now is None else now
    complete = set(store.snapshots(catalog))
    deleted = []
    for name, modified in sorted(store.entries(catalog).items()):
        debris = (is_snapshot_name(name) and name not in complete) or (
            name.startswith(f".{POINTER_NAME}.") and name != _POINTER_LOCK)
        if not debris or now - modified < grace_s or is_live(store, catalog, name):
            continue
        store.delete(catalog, name)
        deleted.append(name)
        log.info("gc: deleted %s/%s/%s (crash debris)", store.url, catalog, name)
    return deleted


def gc_staging(grace_s: float, now: float | None = None, parent: Path | None = None) -> list[Path]:
    """Delete this machine's publish staging folders (`semrec-publish-*`) untouched for `grace_s` seconds."""
    now = time.time() if now is None else now
    deleted = []
    for folder in sorted(Path(parent or tempfile.gettempdir()).glob(f"{STAGING_PREFIX}*")):
        try:
            modified = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])
        except FileNotFoundError:
            continue  # its publisher finished and removed it while we looked
        if now - modified >= grace_s:
            shutil.rmtree(folder, ignore_errors=True)
            deleted.append(folder)
    return deleted
