"""The FastAPI application: ``uvicorn --factory taskfleet_api.main:create_api``."""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from taskfleet_core.broker.client import client
from taskfleet_core.settings import load

from taskfleet_api import accounts, catalog, dlq, jobs, observability
from taskfleet_api.auth import TokenAuth, require_read
from taskfleet_api.limits import BodySizeLimit
from taskfleet_api.responses import ERROR_RESPONSES
from taskfleet_api.settings import ApiSettings

log = logging.getLogger("taskfleet.api")


def create_api() -> FastAPI:
    settings = load(ApiSettings)
    api = FastAPI(
        title="Taskfleet job API",
        version="0.1.0",
        description="Submit background jobs by contract name, follow their progress, revoke them.",
        responses=ERROR_RESPONSES,  # documented on every route: 401, 404, 409, 413
    )
    api.state.auth = TokenAuth(settings)  # mutating routes require a token; read-only ones if configured
    api.include_router(jobs.router, dependencies=[Depends(require_read)])
    api.include_router(catalog.router, dependencies=[Depends(require_read)])
    api.include_router(dlq.router, dependencies=[Depends(require_read)])
    api.include_router(accounts.router, dependencies=[Depends(require_read)])  # companies, users, matches
    if settings.api_cors_origins:  # CORS stays off unless origins are listed explicitly
        origins = [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]
        api.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"])
    api.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    observability.instrument(api)  # /metrics, request metrics, tracing, JSON logs

    @api.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is alive (no dependencies checked: a liveness probe)."""
        return {"status": "ok"}

    @api.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """The broker is reachable (a readiness probe)."""
        try:
            client().ping()
        except Exception as exc:  # any failure means: not ready
            return JSONResponse({"status": "unavailable", "broker": str(exc)}, status.HTTP_503_SERVICE_UNAVAILABLE)
        return JSONResponse({"status": "ok", "broker": "ok"})

    @api.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status.HTTP_500_INTERNAL_SERVER_ERROR)

    return api
