"""The queue registry: the four queues of seed 000 and everything per queue.

Celery routes and kombu queues (``celery_app``), the API's queue view, metrics
labels and the Helm chart's ``values.queues`` all derive from ``QUEUES``; a chart
test fails when they disagree.

Departures from seed 000, on purpose:

* prefetch multiplier 1 instead of 4 (DESIGN.md invariant 4): with ``acks_late`` a
  prefetched message sits in ``unacked``, not in the list, so KEDA would not see
  the backlog and a busy pod would hoard work a new pod could run.
* ``visibility_timeout`` is ``2 x task_time_limit`` (3600 s), not 12 hours: long
  enough that a running task is never redelivered while it runs, short enough that
  a message of a killed worker comes back within the hour.
* rate limits are fleet-wide (enforced in Valkey), not Celery's per-worker
  ``rate_limit``, which multiplies with every replica KEDA adds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kombu import Exchange, Queue

from taskfleet_core.broker import keys


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped: delay = rand(0, min(cap, base * 2**n))."""

    max_retries: int = 5
    backoff_base: int = 2
    backoff_max: int = 600
    jitter: bool = True

    def celery_options(self) -> dict[str, object]:
        return {
            "max_retries": self.max_retries,
            "retry_backoff": self.backoff_base,
            "retry_backoff_max": self.backoff_max,
            "retry_jitter": self.jitter,
        }


@dataclass(frozen=True)
class RateLimit:
    """A limit of the whole fleet, e.g. 30 per 60 s."""

    count: int
    per_seconds: int

    def __str__(self) -> str:
        unit = {1: "s", 60: "m", 3600: "h"}.get(self.per_seconds)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.per_seconds}s"


@dataclass(frozen=True)
class QueueSpec:
    name: str
    purpose: str
    rate_limit: RateLimit | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    time_limit: int = 1800
    soft_time_limit: int = 1500
    concurrency: int = 4
    prefetch_multiplier: int = 1

    @property
    def exchange(self) -> str:
        return self.name

    @property
    def routing_key(self) -> str:
        return self.name

    def kombu_queue(self) -> Queue:
        return Queue(self.name, Exchange(self.exchange, type="direct"), routing_key=self.routing_key)

    def waiting_lists(self) -> list[str]:
        """Every Valkey list this queue's waiting messages can sit in (bare list + priority sub-lists)."""
        return [self.name] + [f"{self.name}{keys.PRIORITY_SEPARATOR}{p}" for p in keys.PRIORITY_STEPS[1:]]

    @property
    def unacked_key(self) -> str:
        return keys.UNACKED_KEY.format(queue=self.name)

    @property
    def unacked_index_key(self) -> str:
        return keys.UNACKED_INDEX_KEY.format(queue=self.name)

    @property
    def unacked_mutex_key(self) -> str:
        return keys.UNACKED_MUTEX_KEY.format(queue=self.name)


QUEUES: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec("default", "Unrouted tasks, maintenance, health checks", retry=RetryPolicy(max_retries=3)),
        QueueSpec("matching", "Company-grant matching calculations", retry=RetryPolicy(max_retries=3)),
        QueueSpec(
            "email",
            "Email notifications, deadline checks",
            rate_limit=RateLimit(30, 60),
            retry=RetryPolicy(max_retries=5, backoff_base=5, backoff_max=900),
        ),
        QueueSpec(
            "sync",
            "Grant data synchronization, embeddings",
            rate_limit=RateLimit(10, 60),
            retry=RetryPolicy(max_retries=4, backoff_base=30, backoff_max=1800),
        ),
    )
}

DEFAULT_QUEUE = "default"

#: seed 000's ``task_routes``, for our wire names: the module prefix picks the queue.
#: Names matching none of them go to ``default``, as in the seed.
TASK_ROUTE_PATTERNS: dict[str, str] = {
    "matching.*": "matching",
    "email.*": "email",
    "sync.*": "sync",
    "pipeline.*": "sync",
}


def visibility_timeout() -> int:
    """Twice the longest hard time limit: a running task is never handed to a second worker."""
    return 2 * max(q.time_limit for q in QUEUES.values())
