"""The reader's local snapshot cache: `<cache>/<catalog>/<snapshot_id>/`.

A snapshot is downloaded into a staging folder, every file is checked against the manifest's size
and sha256, and only then is the folder renamed into place. So a cached folder is always complete
and verified, and opening it again (a restart) needs no re-hashing, only a size check.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from serving.manifest import MANIFEST_NAME, Manifest, ManifestError, check_name, verify_file
from serving.store import Store


def default_cache_dir() -> Path:
    return Path(os.environ.get("SEMREC_CACHE", Path.home() / ".cache" / "semrec"))


def pull(store: Store, catalog: str, snapshot_id: str, cache_dir: str | Path) -> tuple[Path, Manifest]:
    """The verified local copy of a published snapshot, downloading it first if it is not cached."""
    folder = Path(cache_dir) / check_name(catalog, "catalog") / check_name(snapshot_id, "snapshot id")
    if (folder / MANIFEST_NAME).exists():
        return folder, _cached_manifest(folder)
    source = f"{store.url}/{catalog}/{snapshot_id}/{MANIFEST_NAME}"
    try:
        raw = store.read(catalog, snapshot_id, MANIFEST_NAME)
    except FileNotFoundError as err:
        raise ManifestError(f"{source}: no such snapshot (or it is incomplete)") from err
    manifest = Manifest.from_json(raw, source)
    if (manifest.catalog, manifest.snapshot_id) != (catalog, snapshot_id):
        raise ManifestError(f"{source}: describes {manifest.catalog}/{manifest.snapshot_id}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{snapshot_id}.", dir=folder.parent))
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
    """Delete cached snapshots of `catalog` not in `keep`. Safe under running queries on POSIX: files
    that are memory-mapped stay readable until unmapped."""
    folder = Path(cache_dir) / catalog
    doomed = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in keep]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return sorted(p.name for p in doomed)


def _cached_manifest(folder: Path) -> Manifest:
    manifest = Manifest.from_json((folder / MANIFEST_NAME).read_bytes(), str(folder / MANIFEST_NAME))
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file() or path.stat().st_size != entry.bytes:
            raise ManifestError(f"cached snapshot {folder}: {entry.path} is missing or resized; delete the folder")
    return manifest
