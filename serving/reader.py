"""The thin reader downstream services use: open a published snapshot and query it.

    reader = Reader.open("s3://bucket/published", "fashion")     # or a local folder; version="latest"
    reader.search("flowy summer dress", k=10, filters={"categories": ["Dresses"]})  # the snapshot's fusion
    reader.more_like("1078", k=5)
    reader.start_polling(30)                                     # follow LATEST in the background
    reader.health()                                              # refreshes failed in a row, last error

`refresh()` pulls and verifies a newer LATEST, then swaps it in with one reference assignment:
queries already running finish on the snapshot they started with, and a snapshot that fails
verification is refused while the current one keeps serving. Every snapshot in use holds a cache
lease (serving.cache) until the last query on it is done, so no reader's eviction removes it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.cache import Lease, Verify, default_cache_dir, evict, pull
from serving.conversation.ask import Answer
from serving.errors import NotFound
from serving.filters import Filters
from serving.hits import Hit
from serving.manifest import Manifest, ManifestError, check_name
from serving.snapshot import Mode, Snapshot
from serving.store import Store

log = logging.getLogger("semrec.reader")

LATEST = "latest"


@dataclass(frozen=True)
class Health:
    snapshot_id: str  # the snapshot being served
    failed_refreshes: int  # in a row: 0 once a refresh succeeds
    last_error: str | None  # of the latest failed refresh, while failures continue


class Reader:
    def __init__(self, store: Store, catalog: str, snapshot: Snapshot, follow_latest: bool,
                 cache_dir: Path, threads: int | None, verify: Verify = "size"):
        self.store = store
        self.catalog = catalog
        self.cache_dir = cache_dir
        self.threads = threads
        self.verify = verify
        self.follow_latest = follow_latest
        self._snapshot = snapshot
        self._failed_refreshes = 0
        self._last_error: str | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @classmethod
    def open(cls, url: str, catalog: str, version: str = LATEST, cache_dir: str | Path | None = None,
             threads: int | None = None, verify: Verify = "size") -> Reader:
        """Open `version` (a snapshot id, or "latest" to follow LATEST) of `catalog` under the store `url`.
        `verify`: how a snapshot already in the cache is checked on open, "size" or "sha256" (slower)."""
        store = Store(url)
        check_name(catalog, "catalog")
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        snapshot_id = _live_id(store, catalog) if version == LATEST else check_name(version, "version")
        snapshot = _load(store, catalog, snapshot_id, cache, threads, verify)
        return cls(store, catalog, snapshot, version == LATEST, cache, threads, verify)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def manifest(self) -> Manifest:
        return self._snapshot.manifest

    def search(self, text: str, k: int = 10, filters: Filters | Mapping[str, Any] | None = None,
               mode: Mode | None = None) -> list[Hit]:
        """Ranked by the snapshot's fusion (its manifest) unless `mode` asks for dense, hybrid or rrf."""
        return self._snapshot.search(text, k, filters, mode)

    def more_like(self, item_id: str, k: int = 10, filters: Filters | Mapping[str, Any] | None = None) -> list[Hit]:
        return self._snapshot.more_like(item_id, k, filters)

    def ask(self, text: str, k: int = 10) -> Answer:
        """A conversational request ("something like Heat but funnier"): routed, with explanations."""
        return self._snapshot.ask(text, k)

    def health(self) -> Health:
        return Health(self._snapshot.snapshot_id, self._failed_refreshes, self._last_error)

    def refresh(self) -> bool:
        """Swap to LATEST if it moved; True when swapped. Raises (and keeps serving) on a bad snapshot;
        failures in a row are counted in health()."""
        if not self.follow_latest:
            return False
        with self._refresh_lock:
            try:
                swapped = self._swap_to_latest()
            except Exception as err:
                self._failed_refreshes += 1
                self._last_error = f"{type(err).__name__}: {err}"
                raise
            self._failed_refreshes, self._last_error = 0, None
            return swapped

    def _swap_to_latest(self) -> bool:
        snapshot_id = _live_id(self.store, self.catalog)
        if snapshot_id == self._snapshot.snapshot_id:
            return False
        previous = self._snapshot.snapshot_id
        self._snapshot = _load(self.store, self.catalog, snapshot_id, self.cache_dir, self.threads, self.verify)
        log.info("now serving %s/%s", self.catalog, snapshot_id)
        evict(self.cache_dir, self.catalog, keep={snapshot_id, previous})  # the previous: a quick rollback
        return True

    def start_polling(self, interval_s: float) -> None:
        """Call refresh() every `interval_s` seconds in a daemon thread, logging (not raising) failures."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, not {interval_s}")
        if self._poller is not None:
            raise RuntimeError("already polling")
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, args=(interval_s,), daemon=True, name="semrec-poll")
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None

    def _poll(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.refresh()
            except Exception:  # a bad snapshot must not stop polling; the current one keeps serving
                log.warning("refresh of %s failed, still serving %s: %s", self.catalog, self._snapshot.snapshot_id,
                            self._last_error)  # one line per failure: health() counts them
                log.debug("refresh of %s failed", self.catalog, exc_info=True)


def _live_id(store: Store, catalog: str) -> str:
    pointer = store.latest(catalog)
    if pointer is None:
        raise NotFound(f"{store.url}/{catalog}: nothing published yet (no LATEST)")
    return pointer.snapshot_id


def _load(store: Store, catalog: str, snapshot_id: str, cache_dir: Path, threads: int | None,
          verify: Verify) -> Snapshot:
    """Pull and open a snapshot under a cache lease that lasts as long as the Snapshot object does."""
    lease = Lease(cache_dir, catalog, snapshot_id)
    try:
        folder, manifest = pull(store, catalog, snapshot_id, cache_dir, verify)
        snapshot = _open(folder, manifest, threads)
    except BaseException:
        lease.release()
        raise
    weakref.finalize(snapshot, lease.release)  # after the last in-flight query on it lets go
    return snapshot


def _open(folder: Path, manifest: Manifest, threads: int | None) -> Snapshot:
    """Snapshot.open; ManifestError naming the snapshot when a file its manifest vouches for does not load."""
    try:
        return Snapshot.open(folder, manifest, threads)
    except ManifestError:
        raise
    except Exception as err:  # ONNX, tokenizer, FAISS, Arrow, JSON parse errors: each library has its own
        if isinstance(err, OSError) and err.errno is not None:
            raise  # the disk, not the snapshot
        raise ManifestError(f"snapshot {manifest.snapshot_id} does not load, though every file matches its "
                            f"manifest: {type(err).__name__}: {err}") from err
