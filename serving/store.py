"""Published snapshots on any fsspec store (a local folder, `s3://bucket/prefix`, ...).

Layout: `<root>/<catalog>/<snapshot_id>/...` (immutable once its manifest.json exists) and
`<root>/<catalog>/LATEST`, a text file holding the live snapshot id. LATEST only ever moves by
compare-and-swap, so of two concurrent publishers exactly one wins:
- S3: a conditional PUT (`If-None-Match: *` to create, `If-Match: <etag>` to replace);
- a local folder: an flock-guarded read-compare-replace (os.replace is atomic).
S3 endpoint and credentials come from the environment / standard AWS chain (AWS_ENDPOINT_URL, ...).
On a local folder every file and folder is fsynced before LATEST moves (`make_durable`), so a power
cut cannot leave LATEST naming a snapshot whose files never reached the disk.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import fsspec

from serving.errors import NotFound
from serving.manifest import (
    MANIFEST_NAME,
    POINTER_NAME,
    Manifest,
    ManifestError,
    check_name,
    check_snapshot_id,
    is_snapshot_name,
)

_LOCAL = {"file", "local"}
_DELETE_TRIES = 8  # each try lists afresh: a concurrent deleter has finished long before the last


class PointerConflict(RuntimeError):
    """LATEST moved between our read and our swap: another publisher won."""


@dataclass(frozen=True)
class Pointer:
    snapshot_id: str
    token: str  # what a swap must still find: the S3 ETag, or the file's text on a local folder


class BadPointer(ManifestError):
    """LATEST exists but names no snapshot. `pointer`, when LATEST is a file, is what a swap must find to
    replace it: a rollback (or a forced publish) repairs LATEST that way."""

    def __init__(self, message: str, pointer: Pointer | None):
        super().__init__(message)
        self.pointer = pointer


class Store:
    def __init__(self, root: str):
        self.url = root
        # a private instance: fsspec's cache would reuse one built for an earlier endpoint/credentials
        self.fs, self.root = fsspec.core.url_to_fs(root, skip_instance_cache=True)
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        self.is_local = bool(protocols & _LOCAL)
        self.is_s3 = bool(protocols & {"s3", "s3a"})

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def put_file(self, local: str | Path, *parts: str) -> None:
        target = self.path(*parts)
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
        self.fs.put_file(str(local), target)

    def get_file(self, local: str | Path, *parts: str) -> None:
        self.fs.get_file(self.path(*parts), str(local))

    def put_bytes(self, data: bytes, *parts: str) -> None:
        """Write a small file whole: on a local folder through a temp file and rename, never half."""
        target = self.path(*parts)
        if not self.is_local:
            self.fs.pipe_file(target, data)
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _write_whole(Path(target), data)

    def read(self, *parts: str) -> bytes:
        return self.fs.cat_file(self.path(*parts))

    def sha256(self, *parts: str) -> str:
        """The sha256 of a stored file, streamed (never held in memory whole)."""
        with self.fs.open(self.path(*parts), "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    def manifest(self, catalog: str, snapshot_id: str) -> tuple[Manifest, bytes]:
        """A snapshot's parsed manifest and its raw bytes; NotFound when it has none (absent or incomplete)."""
        source = f"{self.url}/{catalog}/{snapshot_id}/{MANIFEST_NAME}"
        if check_name(snapshot_id, "snapshot id") == POINTER_NAME:
            raise NotFound(f"{source}: no such snapshot ({POINTER_NAME} is the pointer to the live one)")
        try:
            raw = self.read(check_name(catalog, "catalog"), snapshot_id, MANIFEST_NAME)
        except FileNotFoundError:
            raise NotFound(f"{source}: no such snapshot (or it is incomplete)") from None
        manifest = Manifest.from_json(raw, source)
        if (manifest.catalog, manifest.snapshot_id) != (catalog, snapshot_id):
            raise ManifestError(f"{source}: describes {manifest.catalog}/{manifest.snapshot_id}")
        return manifest, raw

    def verify(self, catalog: str, snapshot_id: str) -> Manifest:
        """Check every file of a stored snapshot against its manifest (size, then sha256); ManifestError
        naming the first that differs or is missing."""
        manifest, _ = self.manifest(catalog, snapshot_id)
        where = f"{self.url}/{catalog}/{snapshot_id}"
        missing = manifest.missing(self.file_sizes(catalog, snapshot_id))
        if missing:
            raise ManifestError(f"{where}: {missing[0]} is missing or not {manifest.file(missing[0]).bytes} bytes")
        for entry in manifest.files:
            actual = self.sha256(catalog, snapshot_id, entry.path)
            if actual != entry.sha256:
                raise ManifestError(f"{where}: {entry.path}: sha256 {actual} does not match the manifest's "
                                    f"{entry.sha256}")
        return manifest

    def exists(self, *parts: str) -> bool:
        self.fs.invalidate_cache(self.path(*parts))
        return self.fs.exists(self.path(*parts))

    def snapshots(self, catalog: str) -> list[str]:
        """Complete snapshots (those with a manifest) of `catalog`, oldest first (ids sort by time)."""
        folder = self.path(check_name(catalog, "catalog"))
        self.fs.invalidate_cache(folder)
        if not self.fs.exists(folder):
            return []
        names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(folder, detail=False)]
        return sorted(n for n in names if is_snapshot_name(n) and self.exists(catalog, n, MANIFEST_NAME))

    def file_sizes(self, catalog: str, snapshot_id: str) -> dict[str, int]:
        """Byte size of every file under a snapshot, by path relative to the snapshot folder."""
        found = self._files_under(check_name(catalog, "catalog"), check_name(snapshot_id, "snapshot id"))
        return {name: int(info["size"]) for name, info in found.items()}

    def modified(self, catalog: str) -> dict[str, float]:
        """Every file under `<root>/<catalog>/`, by path relative to it, with its modification time (epoch s)."""
        return {name: _modified(info) for name, info in self._files_under(check_name(catalog, "catalog")).items()}

    def _files_under(self, *parts: str) -> dict[str, dict]:
        """Every file under a folder (listed afresh), by path relative to it, with fsspec's info."""
        folder = self.path(*parts)
        self.fs.invalidate_cache(folder)
        prefix = self.fs._strip_protocol(folder).rstrip("/") + "/"
        return {name[len(prefix):]: info for name, info in self.fs.find(folder, detail=True).items()
                if name.startswith(prefix)}

    def delete_snapshot(self, catalog: str, snapshot_id: str) -> None:
        """Delete a snapshot folder. What another process deletes at the same time counts as deleted."""
        self.delete(check_name(catalog, "catalog"), check_name(snapshot_id, "snapshot id"))

    def delete(self, *parts: str) -> None:
        """Delete a file or a folder tree. Already gone, or removed under our feet by a concurrent delete, is
        success at every try; OSError if it is still there after all of them."""
        path = self.path(*parts)
        for attempt in range(_DELETE_TRIES):
            self.fs.invalidate_cache(path)
            try:
                self.fs.rm(path, recursive=True)
            except FileNotFoundError:  # another deleter took an entry first: list again, and go on
                time.sleep(0.01 * attempt)
            self.fs.invalidate_cache(path)
            if not self.fs.exists(path):
                return
        raise OSError(f"{path}: still there after {_DELETE_TRIES} deletes")

    def entries(self, catalog: str) -> dict[str, float]:
        """Every name directly under `<root>/<catalog>/` with its newest modification time (epoch s);
        a folder's time is that of the newest file inside it."""
        newest: dict[str, float] = {}
        for name, modified in self.modified(catalog).items():
            top = name.split("/", 1)[0]
            newest[top] = max(newest.get(top, 0.0), modified)
        return newest

    def make_durable(self, *parts: str) -> None:
        """On a local folder, fsync every file and folder under `parts` and the folder holding it: after
        this a crash cannot lose them. A no-op on object stores (a PUT is durable when it returns)."""
        if not self.is_local:
            return
        top = self.path(*parts)
        for folder, _, files in os.walk(top, topdown=False):  # yields nothing when `top` is a file
            for name in files:
                _fsync(os.path.join(folder, name))
            _fsync(folder)
        if os.path.isfile(top):
            _fsync(top)
        _fsync(os.path.dirname(top))

    def latest(self, catalog: str) -> Pointer | None:
        """The live snapshot of `catalog`, or None before the first publish. BadPointer when LATEST names no
        snapshot (bytes that are not a snapshot id, or a folder)."""
        path = self.path(check_name(catalog, "catalog"), POINTER_NAME)
        where = f"{self.url}/{catalog}/{POINTER_NAME}"
        self.fs.invalidate_cache(path)
        token = _etag(self.fs, path) if self.is_s3 else ""
        try:
            # read after the ETag: if LATEST moves in between, the stale ETag makes our swap fail (safely)
            raw = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise BadPointer(f"{where} is a folder, not the pointer file: move it away, then roll back", None) from None
        except NotADirectoryError:
            raise NotFound(f"{where}: {self.url}/{catalog} is not a folder") from None
        text = raw.decode("utf-8", "surrogateescape").strip()  # any bytes: a bad pointer must still be replaceable
        if not is_snapshot_name(text):
            shown = raw.strip()[:80].decode("utf-8", "backslashreplace")
            raise BadPointer(f"{where}: snapshot id {shown!r} names no snapshot; `semrec publish rollback --to "
                             "<snapshot_id>` replaces it", Pointer(shown, token or text))
        return Pointer(text, token or text)

    def swap_latest(self, catalog: str, snapshot_id: str, expected: Pointer | None) -> None:
        """Point LATEST at `snapshot_id` iff it still is `expected` (None: iff it does not exist yet)."""
        check_snapshot_id(snapshot_id, "snapshot id")
        path = self.path(check_name(catalog, "catalog"), POINTER_NAME)
        data = (snapshot_id + "\n").encode("utf-8")
        if self.is_local:
            _swap_local(Path(path), data, expected)
        elif self.is_s3:
            _swap_s3(self.fs, path, data, expected)
        else:
            raise ValueError(f"{self.url}: no atomic conditional put for protocol {self.fs.protocol!r} "
                             "(supported: a local folder, s3://)")


def _conflict(path: str, expected: Pointer | None) -> PointerConflict:
    was = expected.snapshot_id if expected else "absent"
    return PointerConflict(f"{path} changed since it was read (expected {was}): another publisher won")


def _swap_local(path: Path, data: bytes, expected: Pointer | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{POINTER_NAME}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        current = path.read_bytes().decode("utf-8", "surrogateescape").strip() if path.exists() else None
        if current != (expected.token if expected else None):
            raise _conflict(str(path), expected)
        _write_whole(path, data)


def _write_whole(path: Path, data: bytes) -> None:
    """A temp file beside `path` (`.<name>.<random>`), fsynced, renamed over it (atomic), and the folder
    fsynced so the rename itself reaches the disk: readers see the old or the new bytes, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    _fsync(str(path.parent))


def _fsync(path: str) -> None:
    """fsync a file or a folder (a folder's fsync makes the names in it, renames included, durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _modified(info: dict) -> float:
    """Modification time (epoch seconds) from a local (`mtime`) or S3 (`LastModified`) listing entry."""
    stamp = info.get("mtime", info.get("LastModified"))
    return stamp.timestamp() if isinstance(stamp, datetime) else float(stamp or 0.0)


def _swap_s3(fs: fsspec.AbstractFileSystem, path: str, data: bytes, expected: Pointer | None) -> None:
    if expected is None:
        if not _conditional_put(fs, path, data, mode="create"):  # If-None-Match: *
            raise _conflict(path, expected)
        return
    if _conditional_put(fs, path, data, IfMatch=expected.token):
        return
    # Ceph radosgw before Squid compares If-Match with the *unquoted* ETag and answers 412 to the
    # standard quoted form. If LATEST still has our ETag, the 412 was that; ask again unquoted.
    if _etag(fs, path) != expected.token or not _conditional_put(fs, path, data, IfMatch=expected.token.strip('"')):
        raise _conflict(path, expected)


def _etag(fs: fsspec.AbstractFileSystem, path: str) -> str | None:
    fs.invalidate_cache(path)
    try:
        return str(fs.info(path).get("ETag"))
    except FileNotFoundError:
        return None


def _conditional_put(fs: fsspec.AbstractFileSystem, path: str, data: bytes, **condition: str) -> bool:
    """PUT `data` if the condition holds; False on 412 Precondition Failed."""
    try:
        fs.pipe_file(path, data, **condition)
        return True
    except (FileExistsError, FileNotFoundError):
        return False
    except OSError as err:  # s3fs maps 412 Precondition Failed to a bare OSError(EINVAL)
        if "PreconditionFailed" in repr(err.__cause__) or "pre-condition" in str(err):
            return False
        raise
    finally:
        fs.invalidate_cache(path)
