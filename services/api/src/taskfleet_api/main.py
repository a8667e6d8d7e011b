"""The FastAPI application: ``uvicorn --factory taskfleet_api.main:create_api``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope
from taskfleet_core.broker.client import client
from taskfleet_core.settings import load

from taskfleet_api import accounts, catalog, console, dlq, grants, jobs, observability, outbox
from taskfleet_api.auth import TokenAuth
from taskfleet_api.limits import BodySizeLimit
from taskfleet_api.settings import ApiSettings

log = logging.getLogger("taskfleet.api")


class Readiness(BaseModel):
    status: str
    broker: str


def create_api() -> FastAPI:
    settings = load(ApiSettings)
    # Swagger UI (/docs) and ReDoc (/redoc) from assets in the fastapi-offline wheel, served by this process under
    # /static-offline-docs: the docs work on an offline or locked-down cluster (no CDN)
    api = FastAPIOffline(
        title="Taskfleet job API",
        version="0.1.0",
        description="Submit background jobs by contract name, follow their progress, revoke them.",
    )
    api.state.auth = TokenAuth(settings)  # every router needs a token; mutations and the DLQ an admin one
    api.include_router(jobs.router)
    api.include_router(catalog.router)
    api.include_router(dlq.router)
    api.include_router(accounts.router)  # companies, users, matches
    api.include_router(grants.router)  # search
    api.include_router(outbox.router)  # no routes: the outbox relay's thread (OUTBOX_RELAY_ENABLED)
    console.mount(api)  # the operator console under /console (docs/console.md)
    if settings.api_cors_origins:  # CORS stays off unless origins are listed explicitly
        origins = [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]
        api.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"])
    api.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    observability.instrument(api)  # /metrics, request metrics, tracing, JSON logs

    @api.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is alive (no dependencies checked: a liveness probe)."""
        return {"status": "ok"}

    @api.get(
        "/readyz",
        tags=["health"],
        responses={503: {"description": "The broker is not reachable", "model": Readiness}},
        response_model=Readiness,
    )
    def readyz() -> JSONResponse:
        """The broker is reachable (a readiness probe)."""
        try:
            client().ping()
        except Exception as exc:  # any failure means: not ready
            return JSONResponse({"status": "unavailable", "broker": str(exc)}, status.HTTP_503_SERVICE_UNAVAILABLE)
        return JSONResponse({"status": "ok", "broker": "ok"})

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            exc.headers = {**(exc.headers or {}), "Allow": allowed_methods(api, request.scope)}
        return await http_exception_handler(request, exc)

    @api.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status.HTTP_500_INTERNAL_SERVER_ERROR)

    _document_settings(api, settings)
    return api


def allowed_methods(api: FastAPI, scope: Scope) -> str:
    """A 405's ``Allow``: every method of the path's most specific template (Starlette names only the first
    route it matched, so ``/dlq/replay`` would say GET, from ``/dlq/{entry_id}``)."""
    matching: dict[str, set[str]] = {}
    for route in api.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(scope["path"]):
            matching.setdefault(route.path_format, set()).update((route.methods or set()) - {"HEAD"})
    if not matching:
        return ""
    template = min(matching, key=lambda path: path.count("{"))
    return ", ".join(sorted(matching[template]))


def _document_settings(api: FastAPI, settings: ApiSettings) -> None:
    """The spec carries the limits that come from settings, so a request it calls valid is accepted."""
    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = build()
            countdown = schema["components"]["schemas"]["JobRequest"]["properties"]["countdown"]
            for option in countdown.get("anyOf", [countdown]):
                if option.get("type") == "number":
                    option["maximum"] = settings.api_max_delay_seconds
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
