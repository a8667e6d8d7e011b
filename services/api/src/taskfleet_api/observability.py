"""The API's metrics, traces and logs: ``instrument(api)`` from ``create_api``.

* ``/metrics``: request rate, latency and errors by route template (never the raw path,
  whose ids would explode the series), jobs submitted by task and queue, and every
  publish (``celery_task_sent_total{hostname="api"}``);
* tracing (when an OTLP endpoint is set): a server span per request, and Celery's
  producer span, whose context travels in the message headers to the worker;
* JSON logs when ``LOG_FORMAT=json``, uvicorn's loggers included.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from taskfleet_core.observability import logs, metrics, task_metrics, tracing

SERVICE = "taskfleet-api"


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    if route is not None:
        return getattr(route, "path", "unmatched")
    for candidate in request.app.routes:  # the middleware may run before routing resolved a 404/405
        if candidate.matches(request.scope)[0] == Match.FULL:
            return getattr(candidate, "path", "unmatched")
    return "unmatched"


class HttpMetrics:
    """Request count and latency by route template. A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware``
    runs the app in a task group with memory streams for every request, a large share of a job submit's CPU."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            request = Request(scope)  # routing has stored the matched route in this same scope
            route = _route_of(request)
            metrics.HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
            metrics.HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)


def metrics_response() -> Response:
    path = metrics.multiprocess_dir()
    registry = metrics.multiprocess_registry(path) if path else REGISTRY  # uvicorn --workers N
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def instrument(api: FastAPI) -> None:
    task_metrics.instrument_producer("api", count_jobs=True)
    api.add_middleware(HttpMetrics)
    api.add_api_route("/metrics", metrics_response, methods=["GET"], include_in_schema=False)
    logs.configure(SERVICE, ("uvicorn", "uvicorn.error", "uvicorn.access"))
    if tracing.configure(SERVICE):
        FastAPIInstrumentor.instrument_app(api, exclude_spans=["receive", "send"], excluded_urls="/metrics,/healthz")
