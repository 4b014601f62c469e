"""The snapshot manifest: what a published snapshot holds, and the checksums that vouch for it.

`manifest.json` is the last file a publisher writes, so a snapshot without one is incomplete. Every
other file of the snapshot is listed with its byte size and sha256; a reader refuses any file that
does not match, and any listed path that could escape the snapshot folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from serving.fusion import Fusion

# 2: `fusion` (method, bm25_weight, rrf_k) replaced 1's `bm25_weight`; 3: `fusion.link_weight` (title links);
# 4: `fusion.prior_weight` (popularity prior, with prior/). 1 to 3 still read (no links before 3, no prior);
# an older reader refuses a newer format by its version, not by an unknown field.
FORMAT_VERSION = 4
MANIFEST_NAME = "manifest.json"
POINTER_NAME = "LATEST"  # `<root>/<catalog>/LATEST` names the live snapshot (serving.store), so no snapshot has this id
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # fullmatch: `$` would let "name\n" through
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class ManifestError(ValueError):
    """A manifest (or a file it lists) is malformed, unsafe, does not match its checksum or does not load."""


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative POSIX path inside the snapshot folder
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    catalog: str
    snapshot_id: str
    created_at: str  # ISO 8601, UTC
    git_rev: str
    dvc_lock_sha256: str
    embedding_model: str
    dim: int
    metric: str
    ef_search: int
    fusion: Fusion  # how search combines dense and BM25 by default (serving.fusion), chosen on validation
    files: tuple[FileEntry, ...]
    extra: dict[str, Any] = field(default_factory=dict)  # gate metric, hybrid validation, ...
    format_version: int = FORMAT_VERSION

    def file(self, path: str) -> FileEntry:
        for entry in self.files:
            if entry.path == path:
                return entry
        raise ManifestError(f"snapshot {self.snapshot_id}: manifest lists no file {path!r}")

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str, source: str = MANIFEST_NAME) -> Manifest:
        """Parse and validate; `source` names the file in every error."""
        try:
            raw = json.loads(data)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{source}: not JSON: {err}") from err
        if not isinstance(raw, dict):
            raise ManifestError(f"{source}: expected a JSON object")
        if raw.get("format_version") == 1:  # searched dense by default; its weight served mode="hybrid"
            raw |= {"format_version": FORMAT_VERSION,
                    "fusion": {"method": "dense", "bm25_weight": raw.pop("bm25_weight", None)}}
        if raw.get("format_version") in (2, 3):
            raw["format_version"] = FORMAT_VERSION
        if raw.get("format_version") != FORMAT_VERSION:
            raise ManifestError(
                f"{source}: format_version {raw.get('format_version')!r}, this reader reads 1 to {FORMAT_VERSION}")
        try:
            files = tuple(FileEntry(**entry) for entry in raw.pop("files"))
            fusion = raw.pop("fusion")
            manifest = cls(files=files, fusion=Fusion(**fusion) if isinstance(fusion, dict) else fusion, **raw)
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestError(f"{source}: missing, unknown or bad field: {err}") from err
        manifest.validate(source)
        return manifest

    def validate(self, source: str = MANIFEST_NAME) -> None:
        check_name(self.catalog, f"{source}: catalog")
        check_snapshot_id(self.snapshot_id, f"{source}: snapshot_id")
        for name in ("dim", "ef_search"):
            if not _is_int(getattr(self, name)) or getattr(self, name) <= 0:
                raise ManifestError(f"{source}: {name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.fusion, Fusion):
            raise ManifestError(f"{source}: fusion must be an object (method, bm25_weight, rrf_k, link_weight, "
                                f"prior_weight), got {self.fusion!r}")
        seen: set[str] = set()
        for entry in self.files:
            check_relative_path(entry.path, source)
            if entry.path in seen or entry.path == MANIFEST_NAME:
                raise ManifestError(f"{source}: file {entry.path!r} listed twice or shadows the manifest")
            seen.add(entry.path)
            if not _is_int(entry.bytes) or entry.bytes < 0:
                raise ManifestError(f"{source}: file {entry.path!r}: bytes must be an integer >= 0, "
                                    f"got {entry.bytes!r}")
            if not isinstance(entry.sha256, str) or not _SHA256.fullmatch(entry.sha256):
                raise ManifestError(f"{source}: file {entry.path!r}: bad sha256 {entry.sha256!r}")

    def missing(self, sizes: dict[str, int]) -> list[str]:
        """The listed files that `sizes` (path -> bytes, e.g. Store.file_sizes) lacks or has at another size."""
        return [entry.path for entry in self.files if sizes.get(entry.path) != entry.bytes]


def _is_int(value: object) -> bool:
    return type(value) is int  # JSON `true` is a Python bool, which isinstance(..., int) would let through


def check_name(name: object, what: str) -> str:
    """A catalog or snapshot id: one safe path component."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ManifestError(f"{what} {name!r} is not a safe name ([A-Za-z0-9._-], no leading dot)")
    return name


def check_snapshot_id(name: object, what: str) -> str:
    """A safe name that is not the pointer's."""
    if check_name(name, what) == POINTER_NAME:
        raise ManifestError(f"{what} {name!r} is the pointer to the live snapshot, not a snapshot id")
    return name


def is_snapshot_name(name: str) -> bool:
    try:
        check_snapshot_id(name, "snapshot id")
    except ManifestError:
        return False
    return True


def check_relative_path(path: object, source: str) -> None:
    """Refuse absolute paths, `..`, backslashes and empty parts: a listed file stays inside the snapshot."""
    if (not isinstance(path, str) or path.startswith("/") or "\\" in path or "\0" in path
            or re.match(r"^[A-Za-z]:", path) or any(part in {"", ".", ".."} for part in path.split("/"))):
        raise ManifestError(f"{source}: unsafe file path {path!r} (must be relative, inside the snapshot)")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_folder(folder: str | Path) -> tuple[FileEntry, ...]:
    """List every file under `folder` (sorted, relative POSIX paths) with its size and sha256."""
    folder = Path(folder)
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST_NAME:
            entries.append(FileEntry(rel, path.stat().st_size, sha256_file(path)))
    return tuple(entries)


def verify_file(path: str | Path, entry: FileEntry, snapshot_id: str) -> None:
    """Raise ManifestError naming the file when its size or sha256 differs from the manifest."""
    size = Path(path).stat().st_size
    if size != entry.bytes:
        raise ManifestError(f"snapshot {snapshot_id}: {entry.path}: {size} bytes, manifest says {entry.bytes}")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise ManifestError(
            f"snapshot {snapshot_id}: {entry.path}: sha256 {actual} does not match the manifest's {entry.sha256}")
