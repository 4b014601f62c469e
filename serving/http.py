"""HTTP API over a Reader (FastAPI): `semrec serve --root published --catalog fashion --port 8000`.

    POST /search               {"text": "...", "k": 10, "filters": {...}, "mode": "dense"|"hybrid"|"rrf"}
                               (no mode: the snapshot's fusion, chosen on validation when it was published)
    GET  /items/{id}/similar   ?k=10&creator=...&categories=a&categories=b&year_min=...
    GET  /healthz              200, or 503 after --unhealthy-after failed refreshes in a row
    GET  /snapshot             the snapshot being served
    POST /ask                  {"text": "something like Heat but funnier", "k": 10}: serving.http_ask
    GET  /                     the A/B dashboard page (serving.dashboard)
    GET  /docs                 OpenAPI
Bad input (k out of range, empty or long text, unknown filter fields, numbers out of range, ...) is a
400 naming the field; a body over MAX_BODY_BYTES is a 413. Models and limits: serving/http_models.py.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.arguments import add_reader_arguments
from serving.cache import VERIFY_MODES
from serving.dashboard import System, add_compare_arguments, add_dashboard, compared, snapshot_systems
from serving.filters import FilterError
from serving.http_ask import ask_routes
from serving.http_models import (
    MAX_BODY_BYTES,
    MAX_K,
    MAX_TEXT_CHARS,
    FusionInfo,
    HealthBody,
    Problem,
    Results,
    SearchBody,
    SimilarQuery,
    SnapshotInfo,
)
from serving.reader import Reader

__all__ = ["MAX_K", "MAX_TEXT_CHARS", "create_app", "main"]

UNHEALTHY_AFTER = 3  # failed refreshes in a row before /healthz says 503


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


def create_app(reader: Reader, systems: Mapping[str, System] | None = None,
               unhealthy_after: int = UNHEALTHY_AFTER) -> FastAPI:
    """The API over `reader`; the dashboard offers `systems` (default: the snapshot's own modes)."""
    app = FastAPI(title="semrec", description="Semantic recommendation over a published snapshot.",
                  max_body_size=MAX_BODY_BYTES,
                  responses={400: {"model": Problem, "description": "bad input, naming the field"},
                             413: {"model": Problem, "description": f"request body over {MAX_BODY_BYTES} bytes"}})
    app.add_middleware(JsonBodies)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = ["/".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in err.errors()]
        return JSONResponse(status_code=400, content={"detail": problems})

    @app.exception_handler(FilterError)
    async def bad_filter(_: Request, err: FilterError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(err)})

    @app.get("/healthz", response_model=HealthBody, responses={503: {"model": HealthBody}})
    def healthz() -> Any:
        health = reader.health()
        failing = health.failed_refreshes >= unhealthy_after
        body = HealthBody(status="failing" if failing else "ok", snapshot_id=health.snapshot_id,
                          failed_refreshes=health.failed_refreshes, last_error=health.last_error)
        return JSONResponse(status_code=503, content=body.model_dump()) if failing else body

    @app.get("/snapshot", response_model=SnapshotInfo)
    def snapshot() -> SnapshotInfo:
        served = reader.snapshot
        m = served.manifest
        return SnapshotInfo(catalog=m.catalog, snapshot_id=m.snapshot_id, created_at=m.created_at,
                            git_rev=m.git_rev, embedding_model=m.embedding_model, dim=m.dim,
                            items=len(served.index), fusion=FusionInfo(**asdict(m.fusion)))

    @app.post("/search", response_model=Results)
    def search(body: SearchBody) -> Results:
        snapshot = reader.snapshot  # one snapshot for the whole request, even if a refresh swaps it
        filters = body.filters.to_filters() if body.filters else None
        return Results(snapshot_id=snapshot.snapshot_id, items=snapshot.search(body.text, body.k, filters, body.mode))

    @app.get("/items/{item_id}/similar", response_model=Results, responses={404: {"model": Problem}})
    def similar(item_id: str, query: Annotated[SimilarQuery, Query()]) -> Results:
        snapshot = reader.snapshot
        try:
            hits = snapshot.more_like(item_id, query.k, query.to_filters())
        except KeyError as err:
            raise HTTPException(status_code=404, detail=f"no item {item_id!r} in {snapshot.snapshot_id}") from err
        return Results(snapshot_id=snapshot.snapshot_id, items=hits)

    app.include_router(ask_routes(reader))
    add_dashboard(app, reader, systems or snapshot_systems(reader))
    app.openapi = lambda: _openapi_with_400(app)  # type: ignore[method-assign]
    return app


def _openapi_with_400(app: FastAPI) -> dict[str, Any]:
    """The schema, with FastAPI's 422 entries dropped: validation errors are answered 400 here."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="semrec serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_reader_arguments(parser, "a snapshot id, or 'latest' to follow LATEST")
    parser.add_argument("--verify", choices=VERIFY_MODES, default="size",
                        help="how a snapshot already cached is checked on open (sha256: re-hash every file)")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help="check LATEST this often (0: never)")
    parser.add_argument("--unhealthy-after", type=int, default=UNHEALTHY_AFTER,
                        help="failed refreshes in a row before /healthz answers 503")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    add_compare_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    reader = Reader.open(args.root, args.catalog, args.version, args.cache, verify=args.verify)
    if args.poll_seconds > 0:
        reader.start_polling(args.poll_seconds)
    app = create_app(reader, snapshot_systems(reader, compared(args)), args.unhealthy_after)
    uvicorn.run(app, host=args.host, port=args.port)
    return 0
