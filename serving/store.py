"""Published snapshots on any fsspec store (a local folder, `s3://bucket/prefix`, ...).

Layout: `<root>/<catalog>/<snapshot_id>/...` (immutable once its manifest.json exists) and
`<root>/<catalog>/LATEST`, a text file holding the live snapshot id. LATEST only ever moves by
compare-and-swap, so of two concurrent publishers exactly one wins:
- S3: a conditional PUT (`If-None-Match: *` to create, `If-Match: <etag>` to replace);
- a local folder: an flock-guarded read-compare-replace (os.replace is atomic).
S3 endpoint and credentials come from the environment / standard AWS chain (AWS_ENDPOINT_URL, ...).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import fsspec

from serving.manifest import MANIFEST_NAME, ManifestError, check_name

POINTER_NAME = "LATEST"
_LOCAL = {"file", "local"}


class PointerConflict(RuntimeError):
    """LATEST moved between our read and our swap: another publisher won."""


@dataclass(frozen=True)
class Pointer:
    snapshot_id: str
    token: str  # what a swap must still find: the S3 ETag, or the id itself on a local folder


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

    def read(self, *parts: str) -> bytes:
        return self.fs.cat_file(self.path(*parts))

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
        folder = self.path(check_name(catalog, "catalog"), check_name(snapshot_id, "snapshot id"))
        self.fs.invalidate_cache(folder)
        found = self.fs.find(folder, detail=True)
        prefix = self.fs._strip_protocol(folder).rstrip("/") + "/"
        return {name[len(prefix):]: int(info["size"]) for name, info in found.items() if name.startswith(prefix)}

    def delete_snapshot(self, catalog: str, snapshot_id: str) -> None:
        self.fs.rm(self.path(check_name(catalog, "catalog"), check_name(snapshot_id, "snapshot id")),
                   recursive=True)

    def latest(self, catalog: str) -> Pointer | None:
        """The live snapshot of `catalog`, or None before the first publish."""
        path = self.path(check_name(catalog, "catalog"), POINTER_NAME)
        self.fs.invalidate_cache(path)
        token = _etag(self.fs, path) if self.is_s3 else ""
        try:
            # read after the ETag: if LATEST moves in between, the stale ETag makes our swap fail (safely)
            snapshot_id = self.fs.cat_file(path).decode("utf-8").strip()
        except FileNotFoundError:
            return None
        check_name(snapshot_id, f"{self.url}/{catalog}/{POINTER_NAME}: snapshot id")
        return Pointer(snapshot_id, token or snapshot_id)

    def swap_latest(self, catalog: str, snapshot_id: str, expected: Pointer | None) -> None:
        """Point LATEST at `snapshot_id` iff it still is `expected` (None: iff it does not exist yet)."""
        check_name(snapshot_id, "snapshot id")
        path = self.path(check_name(catalog, "catalog"), POINTER_NAME)
        data = (snapshot_id + "\n").encode("utf-8")
        if self.is_local:
            _swap_local(Path(path), data, expected)
        elif self.is_s3:
            _swap_s3(self.fs, path, data, expected)
        else:
            raise ValueError(f"{self.url}: no atomic conditional put for protocol {self.fs.protocol!r} "
                             "(supported: a local folder, s3://)")


def is_snapshot_name(name: str) -> bool:
    try:
        check_name(name, "snapshot id")
    except ManifestError:
        return False
    return name != POINTER_NAME


def _conflict(path: str, expected: Pointer | None) -> PointerConflict:
    was = expected.snapshot_id if expected else "absent"
    return PointerConflict(f"{path} changed since it was read (expected {was}): another publisher won")


def _swap_local(path: Path, data: bytes, expected: Pointer | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{POINTER_NAME}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        current = path.read_text(encoding="utf-8").strip() if path.exists() else None
        if current != (expected.snapshot_id if expected else None):
            raise _conflict(str(path), expected)
        fd, tmp = tempfile.mkstemp(prefix=f".{POINTER_NAME}.", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


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
