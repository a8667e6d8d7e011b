"""Task metrics from Celery signals, recorded where the work happens (no event stream needed).

Producers (API, Beat, a worker publishing a retry) stamp every message with its publish
time, so the worker can observe the queue wait (publish or ETA -> start); the queue
exporter reads the same stamp to report the age of the oldest waiting message.
"""

from __future__ import annotations

import contextlib
import socket
import time
from datetime import datetime
from typing import Any

from celery import Celery, current_task, signals

from taskfleet_core.observability import metrics

#: Message header holding the publish time (unix seconds); read by the worker and the queue exporter.
SENT_AT_HEADER = "taskfleet_sent_at"

_state: dict[str, Any] = {"producer": None, "worker": None}
_started: dict[str, float] = {}


def instrument_producer(hostname: str, *, count_jobs: bool = False) -> None:
    """Stamp and count every publish of this process; ``hostname`` is a bounded group (``api``, ``beat``)."""
    if _state["producer"] is not None:
        return
    _state["producer"] = hostname
    _state["count_jobs"] = count_jobs
    signals.before_task_publish.connect(_before_publish, weak=False)
    signals.after_task_publish.connect(_after_publish, weak=False)


def _before_publish(sender: Any = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    headers[SENT_AT_HEADER] = time.time()
    task = current_task
    # The running task re-publishes itself: a retry bumps ``retries``; a rate-limit deferral keeps it.
    republished = bool(task and task.request and task.request.id == headers.get("id"))
    if republished and not task.request.called_directly and headers.get("retries", 0) == (task.request.retries or 0):
        metrics.TASK_THROTTLED.labels(headers.get("task", sender), _queue_of(task.request)).inc()


def _after_publish(sender: Any = None, headers: dict[str, Any] | None = None, routing_key: str = "", **_: Any) -> None:
    headers = headers or {}
    name = headers.get("task") or str(sender)
    metrics.TASK_SENT.labels(name, _state["producer"], routing_key or "").inc()
    if _state.get("count_jobs"):
        metrics.JOBS_SUBMITTED.labels(name, routing_key or "").inc()


def _queue_of(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return info.get("routing_key") or _state["worker"] or ""


def instrument_worker(app: Celery, queue: str) -> None:
    """Count and time the task lifecycle of a worker consuming ``queue``."""
    if _state["worker"] is not None:
        return
    _state["worker"] = queue
    _state["group"] = f"worker-{queue}"
    _state.setdefault("nodename", f"{queue}@{socket.gethostname()}")  # celeryd_init names it precisely
    instrument_producer(f"worker-{queue}")
    for signal, handler in (
        (signals.task_received, _received),
        (signals.task_prerun, _prerun),
        (signals.task_postrun, _postrun),
        (signals.task_success, _success),
        (signals.task_failure, _failure),
        (signals.task_retry, _retry),
        (signals.task_revoked, _revoked),
        (signals.task_rejected, _rejected),
        (signals.task_unknown, _unknown),
        (signals.worker_ready, _ready),
        (signals.worker_shutdown, _shutdown),
    ):
        signal.connect(handler, weak=False)
    _state["app"] = app


def _labels(name: str) -> tuple[str, str, str]:
    return (name, _state["group"], _state["worker"])


def _received(request: Any = None, **_: Any) -> None:
    metrics.TASK_RECEIVED.labels(*_labels(request.name)).inc()


def _prerun(task_id: str = "", task: Any = None, **_: Any) -> None:
    now = time.time()
    _started[task_id] = time.monotonic()
    metrics.TASK_STARTED.labels(*_labels(task.name)).inc()
    metrics.WORKER_TASKS_ACTIVE.labels(_state["nodename"]).inc()
    sent_at = _sent_at(task.request)
    if sent_at is not None:
        metrics.TASK_QUEUE_WAIT.labels(*_labels(task.name)).observe(max(0.0, now - sent_at))


def _sent_at(request: Any) -> float | None:
    """Publish time, or the ETA if later: a countdown is not waiting."""
    stamp = getattr(request, SENT_AT_HEADER, None) or (getattr(request, "headers", None) or {}).get(SENT_AT_HEADER)
    if stamp is None:
        return None
    eta = getattr(request, "eta", None)
    if eta:
        with contextlib.suppress(ValueError):
            stamp = max(float(stamp), datetime.fromisoformat(str(eta)).timestamp())
    return float(stamp)


def _postrun(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    metrics.WORKER_TASKS_ACTIVE.labels(_state["nodename"]).dec()
    if started is not None and state not in ("IGNORED", None):
        metrics.TASK_RUNTIME.labels(*_labels(task.name)).observe(time.monotonic() - started)


def _success(sender: Any = None, **_: Any) -> None:
    metrics.TASK_SUCCEEDED.labels(*_labels(sender.name)).inc()


def _failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    metrics.TASK_FAILED.labels(*_labels(sender.name), type(exception).__name__).inc()


def _retry(sender: Any = None, reason: Any = None, **_: Any) -> None:
    metrics.TASK_RETRIED.labels(*_labels(sender.name)).inc()
    cause = getattr(reason, "exc", None) or reason  # autoretry raises Retry(exc=<the cause>)
    cause = type(cause).__name__ if isinstance(cause, BaseException) else "Retry"
    metrics.TASK_RETRIES_BY_REASON.labels(sender.name, _state["worker"], cause).inc()


def _revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    name = getattr(sender, "name", None) or getattr(request, "task", None) or "unknown"
    metrics.TASK_REVOKED.labels(*_labels(name)).inc()


def _rejected(message: Any = None, **_: Any) -> None:
    headers = getattr(message, "headers", None) or {}
    metrics.TASK_REJECTED.labels(*_labels(headers.get("task") or "unknown")).inc()


def _unknown(name: str = "", **_: Any) -> None:
    metrics.TASK_REJECTED.labels(*_labels(name or "unknown")).inc()


def _ready(sender: Any = None, **_: Any) -> None:
    """Worker up; zero every task series so the first event already shows in ``rate()``."""
    app = _state["app"]
    for name, task in app.tasks.items():
        if name.startswith("celery.") or getattr(task, "queue", None) != _state["worker"]:
            continue
        labels = _labels(name)
        for counter in (
            metrics.TASK_RECEIVED,
            metrics.TASK_STARTED,
            metrics.TASK_SUCCEEDED,
            metrics.TASK_RETRIED,
            metrics.TASK_REJECTED,
            metrics.TASK_REVOKED,
        ):
            counter.labels(*labels)
        metrics.TASK_THROTTLED.labels(name, _state["worker"])
    metrics.WORKER_UP.labels(_state["nodename"]).set(1)
    metrics.WORKER_TASKS_ACTIVE.labels(_state["nodename"])


def _shutdown(**_: Any) -> None:
    metrics.WORKER_UP.labels(_state["nodename"]).set(0)


def set_nodename(nodename: str) -> None:
    _state["nodename"] = nodename
