"""The outbox's Prometheus metrics (named and labelled as taskfleet_core.observability.metrics does).

Backlog and age are per queue and set by the relay on each pass (at most once a second); every queue is set,
an empty one to 0, so a drained backlog reads 0 rather than its last value. ``max`` across processes: several
relays read the same table.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: Commit to publish: milliseconds normally, seconds while the broker is away.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

BACKLOG = Gauge(
    "taskfleet_outbox_backlog", "Outbox rows committed and not yet published.", ("queue_name",), multiprocess_mode="max"
)
OLDEST_AGE = Gauge(
    "taskfleet_outbox_oldest_age_seconds",
    "Age of the oldest outbox row not yet published (0 when none waits).",
    ("queue_name",),
    multiprocess_mode="max",
)
PUBLISHED = Counter("taskfleet_outbox_published", "Outbox rows published to their queue.", ("queue_name",))
PUBLISH_ERRORS = Counter(
    "taskfleet_outbox_publish_errors", "Failed publishes of outbox rows (retried).", ("queue_name",)
)
LATENCY = Histogram(
    "taskfleet_outbox_publish_latency_seconds",
    "Seconds from enqueue (inside the producer's transaction) to publish.",
    ("queue_name",),
    buckets=LATENCY_BUCKETS,
)
