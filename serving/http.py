"""HTTP API over a Reader (FastAPI): `semrec serve --root published --catalog fashion --port 8000`.

    POST /search               {"text": "...", "k": 10, "mode": "dense"|"hybrid", "filters": {...}}
    POST /ask                  {"text": "something like Heat but funnier", "k": 10}: serving.http_ask
    GET  /                     the A/B dashboard page (serving.dashboard)
    GET  /items/{id}/similar   ?k=10
    GET  /healthz, /snapshot   liveness, and the snapshot being served
    GET  /docs                 OpenAPI
Bad input (k out of range, empty or long text, unknown filter fields, ...) is a 400 naming the field.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.dashboard import System, add_compare_arguments, add_dashboard, compared, snapshot_systems
from serving.filters import FilterError, Filters
from serving.hits import Hit
from serving.http_ask import ask_routes
from serving.limits import MAX_K, MAX_TEXT_CHARS
from serving.reader import LATEST, Reader


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    k: int = Field(default=10, ge=1, le=MAX_K)
    mode: Literal["dense", "hybrid"] = "dense"
    filters: dict[str, Any] | None = Field(default=None, description=(
        "hard filters (serving.filters.Filters): creator, categories (any of), year_min, year_max, "
        "price_min, price_max; an unknown field is a 400"))


class Results(BaseModel):
    snapshot_id: str
    items: list[Hit]


class JsonBodies:
    """Read a POST body without a content type, or a form-encoded one, as JSON: `curl -d '{...}'` sends
    application/x-www-form-urlencoded, and this API takes no forms."""

    FORM = (b"", b"application/x-www-form-urlencoded")

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            declared = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
            if declared in self.FORM:
                headers = [(name, value) for name, value in scope["headers"] if name != b"content-type"]
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def create_app(reader: Reader, systems: Mapping[str, System] | None = None) -> FastAPI:
    """The API over `reader`; the dashboard offers `systems` (default: the snapshot's own modes)."""
    app = FastAPI(title="semrec", description="Semantic recommendation over a published snapshot.")
    app.add_middleware(JsonBodies)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = ["/".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in err.errors()]
        return JSONResponse(status_code=400, content={"detail": problems})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "snapshot_id": reader.manifest.snapshot_id}

    @app.get("/snapshot")
    def snapshot() -> dict[str, Any]:
        m = reader.manifest
        return {"catalog": m.catalog, "snapshot_id": m.snapshot_id, "created_at": m.created_at,
                "git_rev": m.git_rev, "embedding_model": m.embedding_model, "dim": m.dim,
                "items": len(reader.snapshot.index), "bm25_weight": m.bm25_weight}

    @app.post("/search", response_model=Results)
    def search(body: SearchBody) -> Results:
        snapshot = reader.snapshot  # one snapshot for the whole request, even if a refresh swaps it
        try:
            filters = Filters.parse(body.filters)
        except FilterError as err:
            raise HTTPException(status_code=400, detail=str(err)) from err
        return Results(snapshot_id=snapshot.snapshot_id, items=snapshot.search(body.text, body.k, filters, body.mode))

    @app.get("/items/{item_id}/similar", response_model=Results)
    def similar(item_id: str, k: int = Query(default=10, ge=1, le=MAX_K)) -> Results:
        snapshot = reader.snapshot
        try:
            hits = snapshot.more_like(item_id, k)
        except KeyError as err:
            raise HTTPException(status_code=404, detail=f"no item {item_id!r} in {snapshot.snapshot_id}") from err
        return Results(snapshot_id=snapshot.snapshot_id, items=hits)

    app.include_router(ask_routes(reader))
    add_dashboard(app, reader, systems or snapshot_systems(reader))
    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="semrec serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="published", help="fsspec URL of the published tree")
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--version", default=LATEST, help="a snapshot id, or 'latest' to follow LATEST")
    parser.add_argument("--cache", help="local snapshot cache (default: $SEMREC_CACHE or ~/.cache/semrec)")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help="check LATEST this often (0: never)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    add_compare_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    reader = Reader.open(args.root, args.catalog, args.version, args.cache)
    if args.poll_seconds > 0:
        reader.start_polling(args.poll_seconds)
    uvicorn.run(create_app(reader, snapshot_systems(reader, compared(args))), host=args.host, port=args.port)
    return 0
