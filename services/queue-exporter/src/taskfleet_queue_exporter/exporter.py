"""Queue metrics from one place: ``python -m taskfleet_queue_exporter`` (its own Deployment).

Read straight from Valkey at every scrape, with ``broker.queue_depths`` -- the same
numbers KEDA scales on: the list plus kombu's priority sub-lists, and in-flight
(unacked) work per queue; and, apart (KEDA does not scale on it), delayed work waiting in
the queue's schedule in Valkey. Every worker exporting these would multiply them by the
replica count, hence one small process. Consumer counts come from a broadcast
``inspect`` refreshed in the background, so a slow or missing worker never slows a scrape.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable

import redis
from celery import Celery
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from taskfleet_core.broker.client import client
from taskfleet_core.broker.depths import queue_depths
from taskfleet_core.observability import logs, metrics
from taskfleet_core.observability.task_metrics import SENT_AT_HEADER
from taskfleet_core.reliability.dlq import DeadLetterQueue
from taskfleet_core.settings import ObservabilitySettings, load
from taskfleet_core.tasks.app import create_app
from taskfleet_core.tasks.queues import QUEUES

log = logging.getLogger("taskfleet.queue_exporter")

#: Seconds between two ``inspect`` broadcasts for consumer counts.
CONSUMER_REFRESH_SECONDS = 15.0
#: Exporter port when ``METRICS_PORT`` is unset (celery-exporter's).
DEFAULT_PORT = 9808


def oldest_sent_at(raw: str | None) -> float | None:
    """Publish stamp of a kombu message as stored in a Redis list (JSON with ``headers``)."""
    if not raw:
        return None
    try:
        stamp = json.loads(raw).get("headers", {}).get(SENT_AT_HEADER)
    except (ValueError, AttributeError):
        return None
    return float(stamp) if stamp is not None else None


class Consumers:
    """Workers and pool processes consuming each queue, refreshed by a daemon thread."""

    def __init__(self, interval: float = CONSUMER_REFRESH_SECONDS) -> None:
        self.interval = interval
        self.workers: dict[str, int] = dict.fromkeys(QUEUES, 0)
        self.processes: dict[str, int] = dict.fromkeys(QUEUES, 0)
        self.ready = threading.Event()
        self._app: Celery | None = None

    def refresh(self) -> None:
        if self._app is None:
            self._app = create_app("taskfleet-queue-exporter")
        inspect = self._app.control.inspect(timeout=1.0)
        active = inspect.active_queues() or {}
        stats = inspect.stats() or {}
        workers = dict.fromkeys(QUEUES, 0)
        processes = dict.fromkeys(QUEUES, 0)
        for node, queues in active.items():
            node_stats = stats.get(node)
            pool = (node_stats.get("pool") or {}).get("max-concurrency", 0) if node_stats else 0
            for queue in {q["name"] for q in queues} & set(QUEUES):
                workers[queue] += 1
                processes[queue] += int(pool or 0)
        self.workers, self.processes = workers, processes
        self.ready.set()

    def run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # the broker may be down; try again next round
                log.exception("consumer refresh failed")
            time.sleep(self.interval)


class QueueCollector(Collector):
    def __init__(self, valkey: redis.Redis, consumers: Consumers | None = None) -> None:
        self.valkey = valkey
        self.consumers = consumers

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depths = queue_depths(self.valkey)
        now = time.time()
        pipe = self.valkey.pipeline(transaction=False)
        for spec in QUEUES.values():
            for name in spec.waiting_lists():
                pipe.lindex(name, -1)  # kombu LPUSHes and BRPOPs: the tail is the oldest
        replies = iter(pipe.execute())
        ages: dict[str, float] = {}
        for spec in QUEUES.values():
            stamps = [oldest_sent_at(next(replies)) for _ in spec.waiting_lists()]
            known = [s for s in stamps if s is not None]
            ages[spec.name] = max(0.0, now - min(known)) if known else 0.0

        length = GaugeMetricFamily(
            "celery_queue_length", "Messages waiting (list + priority sub-lists).", labels=["queue_name"]
        )
        by_priority = GaugeMetricFamily(
            "taskfleet_queue_length_by_priority",
            "Messages waiting per priority sub-list.",
            labels=["queue_name", "priority"],
        )
        in_flight = GaugeMetricFamily(
            "taskfleet_queue_in_flight", "Messages delivered to a worker, not yet acknowledged.", labels=["queue_name"]
        )
        scheduled = GaugeMetricFamily(
            "taskfleet_queue_scheduled",
            "Delayed messages in the queue's schedule, not due yet (countdown, ETA, retry backoff, deferral).",
            labels=["queue_name"],
        )
        age = GaugeMetricFamily(
            "taskfleet_queue_oldest_message_age_seconds", "Age of the oldest waiting message.", labels=["queue_name"]
        )
        for queue, depth in depths.items():
            length.add_metric([queue], depth["waiting"])
            in_flight.add_metric([queue], depth["in_flight"])
            scheduled.add_metric([queue], depth["scheduled"])
            age.add_metric([queue], ages[queue])
            for priority, n in depth["waiting_by_priority"].items():
                by_priority.add_metric([queue, str(priority)], n)
        yield from (length, by_priority, in_flight, scheduled, age, self._dlq())
        if self.consumers is not None and self.consumers.ready.is_set():
            workers = GaugeMetricFamily(
                "celery_active_worker_count", "Workers consuming the queue.", labels=["queue_name"]
            )
            procs = GaugeMetricFamily(
                "celery_active_process_count", "Pool processes consuming the queue.", labels=["queue_name"]
            )
            for queue in QUEUES:
                workers.add_metric([queue], self.consumers.workers[queue])
                procs.add_metric([queue], self.consumers.processes[queue])
            yield from (workers, procs)

    def _dlq(self) -> GaugeMetricFamily:
        """The fleet's only DLQ gauge: entries per queue, as the DLQ store and the API's ``/api/v1/dlq/stats``
        count them."""
        dlq = GaugeMetricFamily("taskfleet_dlq_length", "Dead letters kept for the queue.", labels=["queue_name"])
        for queue, size in DeadLetterQueue(self.valkey).sizes().items():
            dlq.add_metric([queue], size)
        return dlq


def main() -> None:
    settings = load(ObservabilitySettings)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logs.configure("taskfleet-queue-exporter")
    consumers = Consumers()
    threading.Thread(target=consumers.run, name="consumers", daemon=True).start()
    REGISTRY.register(QueueCollector(client(), consumers))
    port = settings.metrics_port or DEFAULT_PORT
    metrics.serve(port, settings.metrics_addr, REGISTRY)
    log.info("queue exporter ready on %s:%d", settings.metrics_addr, port)
    threading.Event().wait()


if __name__ == "__main__":
    main()
