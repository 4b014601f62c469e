"""The A/B dashboard: one static page (serving/static/: HTML + JS + CSS, no build step, no CDN, works
offline) and the endpoints it calls, mounted on `semrec serve`'s app.

    GET  /                     the page
    GET  /static/...           its script and style sheet
    GET  /dashboard/systems    the systems the page can put side by side, the first two to show
    POST /dashboard/search     {"system", "text", "k"}     -> that system's hits + its server-side time
    POST /dashboard/similar    {"system", "item_id", "k"}  -> items like one item, the same way

A system answers both kinds of query: the shipped snapshot in its default mode or in each mode the
snapshot offers (serving.snapshot.MODES), a second snapshot (`semrec serve --compare-version`,
e.g. the live one vs a candidate), or PyTorch FP32 + exact search (`semrec demo --compare-pytorch`,
in pipelines/: torch stays out of serving/). Timings are taken around the system call alone, so both
columns are measured the same way; the page keeps the last N per system (p50 / p99 / QPS).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from serving.hits import Hit
from serving.limits import MAX_K, MAX_TEXT_CHARS
from serving.reader import Reader
from serving.snapshot import MODES, Mode

STATIC = Path(__file__).parent / "static"
SHIPPED = "shipped"
# Same-origin only: the page loads nothing from elsewhere, and the browser refuses if it ever tried.
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


class System(Protocol):
    """Something the dashboard can query: a snapshot in one mode, another snapshot, a reference model."""

    @property
    def label(self) -> str: ...
    def search(self, text: str, k: int) -> list[Hit]: ...
    def more_like(self, item_id: str, k: int) -> list[Hit]: ...  # KeyError: no such item


@dataclass(frozen=True)
class SnapshotSystem:
    """A reader's live snapshot, searched in `mode` (None: the snapshot's default)."""

    reader: Reader
    mode: Mode | None = None
    name: str = "snapshot"

    @property
    def label(self) -> str:
        return (f"{self.name} {self.reader.manifest.snapshot_id}: "
                + (f"{self.mode} mode" if self.mode else "default mode"))

    def search(self, text: str, k: int) -> list[Hit]:
        return self.reader.search(text, k) if self.mode is None else self.reader.search(text, k, mode=self.mode)

    def more_like(self, item_id: str, k: int) -> list[Hit]:
        return self.reader.more_like(item_id, k)


def snapshot_systems(reader: Reader, extra: Mapping[str, System] | None = None) -> dict[str, System]:
    """The systems, in the order the page offers them: it starts with the first two side by side.

    The shipped default first (the snapshot's fusion); then `extra` (a second snapshot, PyTorch); then
    each mode, the one most unlike the default first: dense alone beside a fused default, else the fusions."""
    fused_default = reader.manifest.fusion.method != "dense"
    order = sorted(MODES, key=lambda mode: (mode != "dense") if fused_default else (mode == "dense"))
    modes = {mode: SnapshotSystem(reader, mode, "shipped") for mode in order}
    return {SHIPPED: SnapshotSystem(reader, None, "shipped"), **(extra or {}), **modes}


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    system: str
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    k: int = Field(default=10, ge=1, le=MAX_K)


class SimilarRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    system: str
    item_id: str = Field(min_length=1, max_length=200)
    k: int = Field(default=10, ge=1, le=MAX_K)


class SystemInfo(BaseModel):
    id: str
    label: str


class Systems(BaseModel):
    catalog: str
    snapshot_id: str
    items: int
    ask: bool = Field(description="whether the shipped snapshot answers POST /ask (it ships intent/)")
    max_k: int
    systems: list[SystemInfo]


class Timed(BaseModel):
    system: str
    label: str
    server_ms: float = Field(description="time inside the system call: encode + search + metadata")
    items: list[Hit]


def add_dashboard(app: FastAPI, reader: Reader, systems: Mapping[str, System]) -> None:
    """Mount the page and its endpoints on `app`."""

    def pick(name: str) -> System:
        if name not in systems:
            raise HTTPException(status_code=404, detail=f"no system {name!r} (have: {', '.join(systems)})")
        return systems[name]

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP})

    @app.get("/dashboard/systems", response_model=Systems)
    def list_systems() -> Systems:
        snapshot = reader.snapshot
        return Systems(catalog=reader.catalog, snapshot_id=snapshot.snapshot_id, items=len(snapshot.index),
                       ask=snapshot.conversation is not None, max_k=MAX_K,
                       systems=[SystemInfo(id=name, label=system.label) for name, system in systems.items()])

    @app.post("/dashboard/search", response_model=Timed)
    def search(body: SearchRequest) -> Timed:
        system = pick(body.system)
        started = time.perf_counter()
        hits = system.search(body.text, body.k)
        return Timed(system=body.system, label=system.label, server_ms=1000 * (time.perf_counter() - started),
                     items=hits)

    @app.post("/dashboard/similar", response_model=Timed)
    def similar(body: SimilarRequest) -> Timed:
        system = pick(body.system)
        started = time.perf_counter()
        try:
            hits = system.more_like(body.item_id, body.k)
        except KeyError as err:
            raise HTTPException(status_code=404, detail=f"{body.system}: no item {body.item_id!r}") from err
        return Timed(system=body.system, label=system.label, server_ms=1000 * (time.perf_counter() - started),
                     items=hits)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """`semrec serve` options that put a second snapshot on the dashboard."""
    parser.add_argument("--compare-version", metavar="SNAPSHOT_ID",
                        help="a second snapshot (an id, or 'latest') the dashboard can show beside this one")
    parser.add_argument("--compare-root", help="where that snapshot is published (default: --root)")


def compared(args: argparse.Namespace) -> dict[str, System]:
    """The second snapshot named by --compare-version, as a system (pinned: it does not follow LATEST)."""
    if not args.compare_version:
        return {}
    other = Reader.open(args.compare_root or args.root, args.catalog, args.compare_version, args.cache)
    return {"candidate": SnapshotSystem(other, None, "candidate")}

