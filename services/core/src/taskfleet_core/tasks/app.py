"""The Celery app factory: every service builds its app here, from the registry.

One function sets the settings of seed 000's worker table and the invariants of
DESIGN.md (JSON only, UTC, acks_late + reject_on_worker_lost, small prefetch,
visibility_timeout >= 2 x time limit in every place Celery reads it).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from celery import Celery

from taskfleet_core.broker import schedule as _schedule  # noqa: F401  registers the promoter (see below)
from taskfleet_core.settings import BrokerSettings, load, redis_ssl_options
from taskfleet_core.tasks.contracts import CONTRACTS
from taskfleet_core.tasks.prefork import WORKER_POOL
from taskfleet_core.tasks.queues import DEFAULT_QUEUE, QUEUES, TASK_ROUTE_PATTERNS, visibility_timeout

#: Seed 000's result TTL: one hour.
RESULT_EXPIRES = 3600
#: The result backend class (``module:Class``), prefixed to the Valkey URL in ``result_backend``.
RESULT_BACKEND = "taskfleet_core.tasks.results:FleetResultBackend"


def queue_for_task(name: str) -> str:
    """The queue a task name routes to: its contract, else seed 000's patterns, else ``default``."""
    contract = CONTRACTS.get(name)
    if contract is not None:
        return contract.queue
    for pattern, queue in TASK_ROUTE_PATTERNS.items():
        if fnmatch.fnmatchcase(name, pattern):
            return queue
    return DEFAULT_QUEUE


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> dict[str, str]:
    spec = QUEUES[queue_for_task(name)]
    return {"queue": spec.name, "exchange": spec.exchange, "routing_key": spec.routing_key}


def create_app(main: str, *, consumer_queue: str | None = None) -> Celery:
    """A configured app. ``consumer_queue`` is set for a worker: it then keeps its own unacked keys."""
    settings = load(BrokerSettings)
    vt = settings.broker_visibility_timeout_seconds or visibility_timeout()
    spec = QUEUES[consumer_queue or DEFAULT_QUEUE]
    transport: dict[str, Any] = {"visibility_timeout": vt}
    if settings.broker_unacked_restore_seconds:
        # kombu scans for expired unacked messages every interval x throttle seconds (10 x 10 by default)
        restore = settings.broker_unacked_restore_seconds
        transport |= {"unacked_restore_interval": restore, "unacked_restore_throttle": 1}
    if consumer_queue is not None:
        # Per-queue in-flight bookkeeping: ZCARD unacked_index:<queue> is this queue's running work,
        # which KEDA and the API can count without mixing queues.
        transport |= {
            "unacked_key": spec.unacked_key,
            "unacked_index_key": spec.unacked_index_key,
            "unacked_mutex_key": spec.unacked_mutex_key,
        }

    # The result backend is Celery's Redis backend with one-round-trip stores (tasks/results.py).
    backend = f"{RESULT_BACKEND}+{settings.redis_url}"
    app = Celery(main, broker=settings.redis_url, backend=backend, set_as_current=True)
    app.conf.update(
        # seed 000 "Worker Configuration"
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_expires=RESULT_EXPIRES,
        task_time_limit=spec.time_limit,
        task_soft_time_limit=spec.soft_time_limit,
        worker_concurrency=spec.concurrency,
        worker_prefetch_multiplier=spec.prefetch_multiplier,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        timezone="UTC",
        enable_utc=True,
        # queues and routing from the registry
        task_queues=[q.kombu_queue() for q in QUEUES.values()],
        task_default_queue=DEFAULT_QUEUE,
        task_default_exchange=DEFAULT_QUEUE,
        task_default_exchange_type="direct",
        task_default_routing_key=DEFAULT_QUEUE,
        task_routes=(route_task,),
        task_create_missing_queues=False,
        # visibility timeout: the same value everywhere Celery reads it (celery#9339)
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": vt},
        visibility_timeout=vt,
        # behaviour
        task_always_eager=settings.celery_task_always_eager,
        task_eager_propagates=settings.celery_task_always_eager,
        task_track_started=True,
        result_extended=True,
        broker_connection_retry_on_startup=True,
        # A broker loss never ends a job: running tasks finish and ack through a fresh client (broker/transport.py);
        # True would terminate them and mark them REVOKED, which must only mean a user revoked the job.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # ... and a task that finishes while Valkey is away waits for it to store its result (then acks), instead
        # of failing "outside body" and being acked without a result: a lost job.
        result_backend_always_retry=True,
        result_backend_max_retries=120,  # backoff capped at 10 s: about 20 minutes, within the time limit
        worker_send_task_events=False,
        worker_hijack_root_logger=True,
    )
    tls = redis_ssl_options(settings.redis_url)
    if tls is not None:
        # rediss://: the same verified TLS for broker and result backend, from the URL's ssl_* parameters
        # (kombu alone would fall back to CERT_NONE when the URL names no ssl_cert_reqs).
        app.conf.update(broker_use_ssl=dict(tls), redis_backend_use_ssl=dict(tls))
    # One transport for every process (API, Beat, workers, exporter): it files a message due later in the
    # queue's schedule in Valkey instead of its list. The promoter that drains that schedule registers with
    # housekeeping when broker/schedule.py is imported -- above, so every process that can schedule work
    # (and every worker and Beat, which run housekeeping) has it, whenever its transport gets loaded.
    app.conf.broker_transport = "taskfleet_core.broker.transport:Transport"
    if consumer_queue is not None:
        # unknown, malformed and undecodable messages are dead-lettered, not only logged and dropped
        app.conf.worker_consumer = "taskfleet_core.reliability.message_guard:GuardedConsumer"
        app.conf.worker_pool = WORKER_POOL  # prefork without the warm-shutdown double run (tasks/prefork.py)
    return app
