"""The fleet's Prometheus metrics and their exposition.

Names and labels follow danihodovic/celery-exporter where they overlap (``celery_task_*_total``,
``celery_task_runtime``, ``celery_worker_up`` ...) so its public dashboards and alerts keep working;
everything beyond it is prefixed ``taskfleet_``.

Workers are prefork: every child writes its samples to files in a per-pod directory
(prometheus-client's multiprocess mode) and the worker's main process serves the merged view.
The directory is emptied when the worker starts, and the files of children that died without
saying so (OOM kill) are marked dead at every scrape, so their live gauges do not linger.
Every metric here has labels: a labelled metric creates its value lazily, so switching to
multiprocess mode at worker start (``enable_multiprocess``) is never too late.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from taskfleet_core.observability import probes

log = logging.getLogger(__name__)

#: client_python's default buckets, extended to the queues' time limits (up to 30 minutes).
RUNTIME_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    7.5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
)
#: celery-exporter's queue-wait range: 50 ms to 30 minutes.
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
#: API request latency.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

TASK_LABELS = ("name", "hostname", "queue_name")

# --- celery-exporter's names ------------------------------------------------------------------
TASK_SENT = Counter("celery_task_sent", "Tasks published to the broker.", TASK_LABELS)
TASK_RECEIVED = Counter("celery_task_received", "Tasks a worker received from the broker.", TASK_LABELS)
TASK_STARTED = Counter("celery_task_started", "Tasks that started running.", TASK_LABELS)
TASK_SUCCEEDED = Counter("celery_task_succeeded", "Tasks that succeeded.", TASK_LABELS)
TASK_FAILED = Counter("celery_task_failed", "Tasks that failed for good.", (*TASK_LABELS, "exception"))
TASK_RETRIED = Counter("celery_task_retried", "Task runs that ended in a retry.", TASK_LABELS)
TASK_REJECTED = Counter("celery_task_rejected", "Messages rejected (unknown task, bad message).", TASK_LABELS)
TASK_REVOKED = Counter("celery_task_revoked", "Tasks revoked before or while running.", TASK_LABELS)
TASK_RUNTIME = Histogram(
    "celery_task_runtime", "Seconds a task run took (successes and failures).", TASK_LABELS, buckets=RUNTIME_BUCKETS
)
TASK_QUEUE_WAIT = Histogram(
    "celery_task_queue_wait_time",
    "Seconds from publish (or ETA) to start: how long work waits in the queue.",
    TASK_LABELS,
    buckets=WAIT_BUCKETS,
)
WORKER_UP = Gauge("celery_worker_up", "1 while the worker is consuming.", ("hostname",), multiprocess_mode="max")
WORKER_TASKS_ACTIVE = Gauge(
    "celery_worker_tasks_active", "Tasks running now in this worker.", ("hostname",), multiprocess_mode="livesum"
)

# --- beyond celery-exporter -------------------------------------------------------------------
TASK_RETRIES_BY_REASON = Counter(
    "taskfleet_task_retries", "Retries by the exception that caused them.", ("name", "queue_name", "reason")
)
TASK_THROTTLED = Counter(
    "taskfleet_task_throttled", "Runs deferred by the queue's fleet-wide rate limit.", ("name", "queue_name")
)
BEAT_SENDS = Counter("taskfleet_beat_sends", "Tasks Beat published, per schedule entry.", ("entry", "name"))
BEAT_LAST_SEND = Gauge(
    "taskfleet_beat_last_send_timestamp_seconds",
    "Last successful publish per schedule entry (unix seconds).",
    ("entry", "name"),
    multiprocess_mode="max",
)
JOBS_SUBMITTED = Counter(
    "taskfleet_jobs_submitted", "Jobs the API accepted, by task and queue.", ("name", "queue_name")
)
HTTP_REQUESTS = Counter("taskfleet_http_requests", "API requests by route and status.", ("method", "route", "status"))
HTTP_LATENCY = Histogram(
    "taskfleet_http_request_duration_seconds",
    "API request latency by route.",
    ("method", "route"),
    buckets=HTTP_BUCKETS,
)

_DEAD_PID_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


def multiprocess_dir() -> Path | None:
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def enable_multiprocess(default_dir: Path) -> Path:
    """Use (and empty) ``PROMETHEUS_MULTIPROC_DIR`` or ``default_dir``; call before any sample is taken.

    Emptying at start matters: a restarted container keeps its emptyDir, and stale counter
    files of the previous run would be summed into the new one forever.
    """
    path = multiprocess_dir() or default_dir
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # only prometheus-client's files: the variable may name a shared dir
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    # chosen at import; re-read now the variable is set (prometheus-client leaves get_value_class unannotated)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path


def default_worker_dir(queue: str) -> Path:
    return Path(tempfile.gettempdir()) / "taskfleet-metrics" / queue


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_process_dead(pid: int, path: Path) -> None:
    """Drop ``pid``'s live gauges from the merged view (prometheus-client leaves this function unannotated)."""
    multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def mark_dead_processes(path: Path) -> list[int]:
    """Drop the live gauges of processes that are gone (no ``worker_process_shutdown`` for an OOM kill)."""
    dead = set()
    for file in path.glob("gauge_live*_*.db"):
        match = _DEAD_PID_FILE.match(file.name)
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        mark_process_dead(pid, path)
    return sorted(dead)


class _MultiProcessView(Collector):
    """The merged samples of every process of this pod, after marking dead children."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # prometheus-client leaves MultiProcessCollector unannotated
        self._collector = multiprocess.MultiProcessCollector(None, path=str(path))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        mark_dead_processes(self.path)
        merged: Iterable[Metric] = self._collector.collect()  # type: ignore[no-untyped-call]
        return merged


class HeartbeatCollector(Collector):
    """``taskfleet_worker_heartbeat_timestamp_seconds``: the liveness probe's heartbeat file, read at scrape time.

    The worker has one heartbeat, the file ``probes.HeartbeatStep`` refreshes from the consumer's timer; this gauge
    is its modification time, so a wedged event loop shows here exactly when the liveness probe sees it.
    """

    def __init__(self, path: Path, hostname: str, queue: str) -> None:
        self.path = path
        self.labels = [hostname, queue]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "taskfleet_worker_heartbeat_timestamp_seconds",
            "Last refresh of the worker's heartbeat file by its event loop (unix seconds).",
            labels=["hostname", "queue_name"],
        )
        refreshed = probes.last_beat(self.path)
        if refreshed is not None:
            family.add_metric(self.labels, refreshed)
        yield family


def multiprocess_registry(path: Path) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_MultiProcessView(path))
    return registry


def serve(port: int, addr: str, registry: CollectorRegistry | None = None) -> None:
    """Serve ``/metrics`` from a daemon thread of this process."""
    if registry is None:
        path = multiprocess_dir()
        registry = multiprocess_registry(path) if path else None
    if registry is None:
        start_http_server(port, addr)
    else:
        start_http_server(port, addr, registry=registry)
    log.info("metrics on http://%s:%d/metrics", addr, port)
