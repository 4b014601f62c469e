"""The reader's local snapshot cache, `<cache>/<catalog>/<snapshot_id>/`, shared by every reader on the machine.

A snapshot is downloaded into a hidden staging folder, every file is checked against the manifest's
size and sha256, and only then is the folder renamed into place: a cached folder is complete and
verified, so opening it again needs a size check only (`verify="sha256"` re-hashes every file). A
cached folder that fails that check (a crash, a disk fault) is moved aside and downloaded again.

Leases: whoever uses a snapshot (a Reader, a download) holds a shared flock on its lease file
`<catalog>/.<snapshot_id>~lease`. Eviction takes that lock exclusively without waiting and skips a
snapshot it cannot get, so no reader - in this process or another one sharing the folder - loses
files it still reads lazily. The kernel drops a lock when its holder exits, kill -9 included: no
stale lease, no heartbeat, no pid reuse to worry about (hence flock rather than pid files).
Eviction renames a folder to a hidden name before deleting it, so a crash mid-delete never leaves a
half-empty snapshot under its real name; hidden leftovers (`.<snapshot_id>~...`) go at the next one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Literal, Self, get_args

from serving.manifest import MANIFEST_NAME, Manifest, ManifestError, check_name, is_snapshot_name, verify_file
from serving.store import Store

log = logging.getLogger("semrec.cache")

Verify = Literal["size", "sha256"]
VERIFY_MODES: tuple[str, ...] = get_args(Verify)
_SEP = "~"  # never in a safe name, so `.<snapshot_id>~<what>` parses back to the id


def default_cache_dir() -> Path:
    return Path(os.environ.get("SEMREC_CACHE", Path.home() / ".cache" / "semrec"))


class Lease:
    """A shared hold on one cached snapshot: eviction leaves it alone until `release()` or process exit."""

    def __init__(self, cache_dir: str | Path, catalog: str, snapshot_id: str):
        folder = Path(cache_dir) / check_name(catalog, "catalog")
        folder.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = _flock(_hidden(folder, check_name(snapshot_id, "snapshot id"), "lease"),
                                      fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def pull(store: Store, catalog: str, snapshot_id: str, cache_dir: str | Path,
         verify: Verify = "size") -> tuple[Path, Manifest]:
    """The verified local copy of a published snapshot, downloading it first if it is not cached (or broken)."""
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, not {verify!r}")
    folder = Path(cache_dir) / check_name(catalog, "catalog") / check_name(snapshot_id, "snapshot id")
    with Lease(cache_dir, catalog, snapshot_id):
        if folder.exists():
            try:
                return folder, _cached_manifest(folder, verify)
            except ManifestError as err:
                log.warning("cached snapshot is broken, downloading it again: %s", err)
                _move_aside(folder)  # deleted by the next eviction, once no reader leases it
        manifest, raw = store.manifest(catalog, snapshot_id)
        staging = Path(tempfile.mkdtemp(prefix=f".{snapshot_id}{_SEP}staging-", dir=folder.parent))
        try:
            for entry in manifest.files:
                local = staging / entry.path
                local.parent.mkdir(parents=True, exist_ok=True)
                store.get_file(local, catalog, snapshot_id, entry.path)
                verify_file(local, entry, snapshot_id)
            (staging / MANIFEST_NAME).write_bytes(raw)
            try:
                os.rename(staging, folder)
            except OSError:
                if not (folder / MANIFEST_NAME).exists():  # lost a race with another pull: keep theirs
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder, manifest


def evict(cache_dir: str | Path, catalog: str, keep: set[str]) -> list[str]:
    """Delete the cached snapshots of `catalog` outside `keep` that no reader leases, and hidden leftovers
    (staging and half-deleted folders, lease files) of snapshots nobody leases; returns the ids evicted."""
    folder = Path(cache_dir) / check_name(catalog, "catalog")
    if not folder.is_dir():
        return []
    names = (p.name[1:].partition(_SEP)[0] if p.name.startswith(".") else p.name
             for p in folder.iterdir() if _SEP in p.name or not p.name.startswith("."))
    snapshot_ids = {name for name in names if is_snapshot_name(name)}
    evicted = []
    for snapshot_id in sorted(snapshot_ids - keep):
        lease = _hidden(folder, snapshot_id, "lease")
        fd = _flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if fd is None:
            continue  # a reader uses it
        try:  # nobody uses it while we hold the lock: every staging or trash folder of it is dead
            if (folder / snapshot_id).exists():
                _move_aside(folder / snapshot_id)
                evicted.append(snapshot_id)
            leftovers = [p for p in folder.glob(f".{snapshot_id}{_SEP}*") if p.is_dir()]
            lease.unlink(missing_ok=True)  # _flock's inode check sends anyone waiting on it to a new one
        finally:
            os.close(fd)
        for leftover in leftovers:  # after the lock: a long delete does not hold up a reader
            shutil.rmtree(leftover, ignore_errors=True)
    return evicted


def _hidden(folder: Path, snapshot_id: str, what: str) -> Path:
    return folder / f".{snapshot_id}{_SEP}{what}"


def _move_aside(path: Path) -> None:
    """Rename a snapshot folder to a hidden trash name: it vanishes from view in one atomic step."""
    try:
        os.rename(path, _hidden(path.parent, path.name, f"trash-{uuid.uuid4().hex[:8]}"))
    except FileNotFoundError:
        pass  # someone else moved it first


def _flock(path: Path, mode: int) -> int | None:
    """A descriptor of `path` holding flock `mode`, or None when LOCK_NB and it is held. Retries when
    `path` was unlinked (by an eviction) between our open and our lock, so the lock is on the live file."""
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _cached_manifest(folder: Path, verify: Verify) -> Manifest:
    """The manifest of a cached folder whose files all have their listed size (and sha256 if asked)."""
    try:
        raw = (folder / MANIFEST_NAME).read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"cached snapshot {folder}: no {MANIFEST_NAME}") from None
    manifest = Manifest.from_json(raw, str(folder / MANIFEST_NAME))
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file() or path.stat().st_size != entry.bytes:
            raise ManifestError(f"cached snapshot {folder}: {entry.path} is missing or resized")
        if verify == "sha256":
            verify_file(path, entry, manifest.snapshot_id)
    return manifest
