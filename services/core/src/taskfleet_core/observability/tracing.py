"""OpenTelemetry tracing, configured by the standard ``OTEL_*`` variables.

Off unless an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and ``OTEL_SDK_DISABLED`` is not true. The
exporter is OTLP/HTTP (protobuf); sampler, resource, batch delays and headers come
from the SDK's own variables.

A prefork worker must call ``configure`` in each child (``worker_process_init``): the
batch processor's thread does not survive fork. Celery's instrumentation injects the
trace context into message headers on publish and extracts it on run, so the trace
started by ``POST /api/v1/jobs`` continues into the worker's task span.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

# The SDK, the exporter and the instrumentations are imported only when tracing is on: they cost about a second of
# start-up (protobuf, the OTLP exporter, wrapt), which a worker scaled from zero should not pay for nothing.

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None


def enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(service_name: str, *, celery: bool = True, clients: bool = True) -> bool:
    """Install the SDK for this process; returns False (and does nothing) when tracing is off.

    ``OTEL_SERVICE_NAME`` wins over ``service_name``. ``clients`` instruments redis-py,
    HTTPX and SQLAlchemy (see ``instrument_libraries``) so Valkey, HTTP and database calls are child spans.
    """
    global _provider
    if _provider is not None or not enabled():
        return _provider is not None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    os.environ.setdefault("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create())
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    if celery:
        CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    if clients:
        instrument_libraries()
    log.info("tracing on: service %s", os.environ["OTEL_SERVICE_NAME"])
    return True


def instrument_libraries() -> None:
    """Wrap redis-py, HTTPX and SQLAlchemy so their calls become child spans of the current span.

    Call it before application modules import these libraries (``from sqlalchemy.ext.asyncio import
    create_async_engine`` keeps the unwrapped function otherwise). The wrappers use the global tracer
    provider lazily, so a prefork parent may wrap and each child install the SDK after fork.
    """
    if not enabled():
        return
    # Imported here on purpose: these import SQLAlchemy and HTTPX, which are not dependencies of taskfleet-core
    # (the Beat and queue-exporter images lack them); only services that have them call this function.
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    for instrumentor in (RedisInstrumentor(), HTTPXClientInstrumentor(), SQLAlchemyInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(skip_dep_check=True)  # SQLAlchemy 2.1 works, though not yet declared


def annotate_task(task: Any) -> None:
    """Put our task attributes on the current (task) span: id, name, queue, retry count."""
    from opentelemetry import trace

    span = trace.get_current_span()
    if not span.is_recording():
        return
    request = task.request
    info = getattr(request, "delivery_info", None) or {}
    span.set_attribute("taskfleet.task.id", request.id or "")
    span.set_attribute("taskfleet.task.name", task.name)
    span.set_attribute("taskfleet.queue", info.get("routing_key") or getattr(task, "queue", "") or "")
    span.set_attribute("taskfleet.task.retries", int(request.retries or 0))


def flush(timeout_millis: int = 5000) -> None:
    """Export what is buffered (a recycled child must not take its spans with it)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)
