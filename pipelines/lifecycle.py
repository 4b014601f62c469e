"""A published tree after upload: rollback, retention (prune) and crash-debris collection (gc).

Safe against each other and against concurrent publishers, with no lock beyond LATEST's
compare-and-swap (S3 has no other):
- prune never deletes LATEST's target. It marks a doomed snapshot (`<id>/.pruning-<random>`), hides it
  (its manifest goes, so listings, readers and rollbacks see it as incomplete), and re-reads LATEST.
  If a rollback chose the snapshot meanwhile, it puts the manifest back, but only over every file the
  manifest lists, and removes its mark. Otherwise it deletes every file, and the marks and the folder
  last. A snapshot another pruner deleted first counts as deleted.
- rollback reads LATEST, verifies every file of the target (size and sha256), swaps from the LATEST
  it read, and then checks the target again by its files: no prune's mark, its manifest, then every
  file it lists. If a prune took it between check and swap, LATEST goes back and the rollback fails
  (retry it). A mark stays until every file its prune deletes is gone, so whatever order the steps
  interleave in, one of the two sees the other.
- gc deletes what crashes leave behind once it is older than a grace period: snapshot folders
  without a manifest (a publisher or pruner killed mid-way; a prune's fresh mark keeps a hidden
  snapshot young), prune marks in complete snapshots, `.LATEST.*` temp files, and this machine's
  `semrec-publish-*` staging folders.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from serving.errors import NotFound
from serving.manifest import MANIFEST_NAME, POINTER_NAME, Manifest, check_snapshot_id, is_snapshot_name
from serving.store import BadPointer, Pointer, PointerConflict, Store

log = logging.getLogger("semrec.publish")

STAGING_PREFIX = "semrec-publish-"  # the publisher's local temp folders (tempfile.gettempdir())
PRUNE_MARK = ".pruning-"  # `<snapshot>/.pruning-<random>`: a prune is at work on that snapshot
_POINTER_LOCK = f".{POINTER_NAME}.lock"  # held by local swaps: deleting it would break their mutual exclusion


def is_live(store: Store, catalog: str, snapshot_id: str) -> bool:
    live = store.latest(catalog)
    return live is not None and live.snapshot_id == snapshot_id


def prune(store: Store, catalog: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` complete snapshots, never LATEST's target; returns the deleted."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, not {keep}")
    return [snapshot_id for snapshot_id in store.snapshots(catalog)[:-keep]
            if not is_live(store, catalog, snapshot_id) and _prune_one(store, catalog, snapshot_id)]


def _prune_one(store: Store, catalog: str, snapshot_id: str) -> bool:
    """Delete one snapshot unless LATEST moves to it meanwhile; True when this prune deleted it."""
    try:
        raw = store.read(catalog, snapshot_id, MANIFEST_NAME)
    except FileNotFoundError:
        return False  # another pruner is deleting it
    mark = f"{PRUNE_MARK}{uuid.uuid4().hex[:12]}"
    store.put_bytes(b"", catalog, snapshot_id, mark)  # before it is hidden: rollbacks and gc see a prune at work
    store.delete(catalog, snapshot_id, MANIFEST_NAME)  # hidden: no reader or rollback can pick it now
    if is_live(store, catalog, snapshot_id):  # a rollback verified and chose it before it was hidden
        _unhide(store, catalog, snapshot_id, raw)
        store.delete(catalog, snapshot_id, mark)
        return False
    for name in store.file_sizes(catalog, snapshot_id):
        if not name.startswith(PRUNE_MARK):
            store.delete(catalog, snapshot_id, name)  # the manifest too, if a pruner put it back meanwhile
    store.delete_snapshot(catalog, snapshot_id)  # the marks last: until every file is gone, no rollback stands
    log.info("retention: deleted %s/%s/%s", store.url, catalog, snapshot_id)
    return True


def _unhide(store: Store, catalog: str, snapshot_id: str, raw: bytes) -> None:
    """Put a live snapshot's manifest back, only over every file it lists: a manifest never vouches for
    files another pruner deleted (the rollback that chose the snapshot then finds them gone and undoes)."""
    manifest = Manifest.from_json(raw, f"{store.url}/{catalog}/{snapshot_id}/{MANIFEST_NAME}")
    where = f"{store.url}/{catalog}/{snapshot_id}"
    if manifest.missing(store.file_sizes(catalog, snapshot_id)):
        log.warning("retention: %s is live but another pruner deleted files of it: left hidden", where)
        return
    store.put_bytes(raw, catalog, snapshot_id, MANIFEST_NAME)
    if manifest.missing(store.file_sizes(catalog, snapshot_id)):  # deleted while we put it back
        store.delete(catalog, snapshot_id, MANIFEST_NAME)
        log.warning("retention: %s is live but another pruner deleted files of it: left hidden", where)
        return
    log.info("retention: kept %s, LATEST moved to it", where)


def rollback(store: Store, catalog: str, to: str) -> Pointer:
    """Point LATEST at the complete, verified snapshot `to`; returns the pointer it replaced. Also repairs a
    LATEST that names no snapshot."""
    check_snapshot_id(to, "snapshot id")
    try:
        live = store.latest(catalog)
    except BadPointer as err:
        if err.pointer is None:
            raise
        live = err.pointer
    if live is None:
        raise NotFound(f"{store.url}/{catalog}: nothing published yet, so nothing to roll back")
    try:
        manifest = store.verify(catalog, to)  # every file's size and sha256, streamed from the store
    except NotFound:
        raise NotFound(f"{store.url}/{catalog}/{to}: no complete snapshot to roll back to "
                       f"(have: {', '.join(store.snapshots(catalog)) or 'none'})") from None
    store.swap_latest(catalog, to, live)  # PointerConflict if LATEST moved since we read it
    gone = _taken(store, catalog, to, manifest)
    if gone:
        now = store.latest(catalog)
        back = is_snapshot_name(live.snapshot_id) and now is not None and now.snapshot_id == to
        if back:
            store.swap_latest(catalog, live.snapshot_id, now)
        raise PointerConflict(f"{store.url}/{catalog}/{to} was pruned while rolling back ({gone}); LATEST is "
                              f"{'back at ' + live.snapshot_id if back else 'not moved back'}: retry the rollback")
    return live


def _taken(store: Store, catalog: str, snapshot_id: str, manifest: Manifest) -> str | None:
    """Why a snapshot LATEST just moved to is being or was deleted by a prune, or None when it stands."""
    names = store.file_sizes(catalog, snapshot_id)  # marks first: one is gone only once its prune deleted all
    if any(name.startswith(PRUNE_MARK) for name in names):
        return "a prune is deleting it"
    if MANIFEST_NAME not in names:
        return "its manifest is hidden"
    missing = manifest.missing(store.file_sizes(catalog, snapshot_id))  # listed after the marks
    return f"{missing[0]} is gone" if missing else None


def gc(store: Store, catalog: str, grace_s: float, now: float | None = None) -> list[str]:
    """Delete `<root>/<catalog>/` debris older than `grace_s` seconds; returns the names (paths, for prune
    marks) deleted."""
    if not (math.isfinite(grace_s) and grace_s >= 0):
        raise ValueError(f"gc grace period must be a finite number of seconds >= 0, not {grace_s}")
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
    for path, modified in sorted(store.modified(catalog).items()):  # a pruner killed after putting a manifest back
        snapshot_id, _, name = path.partition("/")
        if snapshot_id in complete and name.startswith(PRUNE_MARK) and now - modified >= grace_s:
            store.delete(catalog, snapshot_id, name)
            deleted.append(path)
            log.info("gc: deleted %s/%s/%s (a killed prune's mark)", store.url, catalog, path)
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
