"""Return a lost worker's in-flight messages within seconds, not after the visibility timeout.

Each worker process refreshes ``taskfleet:worker:<id>`` (TTL ``WORKER_LOST_SECONDS``) from the timer that
refreshes its probe file (``WorkerHeartbeat``, used by observability/probes.py), and its QoS keeps the delivery
tags it holds in ``taskfleet:inflight:<id>`` (broker/transport.py). ``reap_lost_workers`` runs as fleet
housekeeping in every worker and in Beat: for every registered worker whose heartbeat key has expired, it
returns exactly the messages of its in-flight set to their queues with kombu's ``restore_by_tag`` (one WATCH
transaction per message: several reapers racing push each message once), then forgets the worker.

Liveness is the heartbeat, never the age of a delivery: a live worker's hour-long task is never taken away.
A process that stops refreshing for ``WORKER_LOST_SECONDS`` (SIGKILL, OOM, node loss, an event loop stuck that
long) is lost; its tasks run again elsewhere (acks_late + idempotency make that safe). kombu's visibility
timeout (3600 s) stays as the last resort for deliveries no worker is recorded for.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import redis

from taskfleet_core.broker import inflight, keys
from taskfleet_core.reliability import housekeeping
from taskfleet_core.settings import BrokerSettings, load

log = logging.getLogger("taskfleet.reaper")

#: How often each housekeeping process looks for lost workers.
REAP_SECONDS = 2.0
#: The longest a live worker waits between attempts to reconnect to the broker (kombu's ``ensure_connection``
#: ``interval_max``). Its event loop, hence its heartbeat, is paused meanwhile.
RECONNECT_SECONDS = 30.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def reap(client: redis.Redis, worker: str, entry: dict[str, Any], url: str | None = None) -> int:
    """Return a lost worker's in-flight messages to their queues and forget it; returns how many went back."""
    from taskfleet_core.broker.transport import restore_tags  # kombu: only where reaping happens

    if client.exists(inflight.heartbeat_key(worker)):
        return 0  # it came back (a delivery sets the heartbeat again)
    tags = sorted(_text(tag) for tag in client.smembers(inflight.inflight_key(worker)))
    pushed = 0
    if tags:
        pushed = restore_tags(
            url or load(BrokerSettings).redis_url,
            str(entry.get("unacked_key") or "unacked"),
            str(entry.get("unacked_index_key") or "unacked_index"),
            inflight.inflight_key(worker),
            tags,
        )
        log.warning(
            "worker %s (queue %s) lost its heartbeat: %d of its %d in-flight messages returned to the queue",
            worker,
            entry.get("queue", "?"),
            pushed,
            len(tags),
        )
    _forget_if_lost_and_empty(client, worker)
    return pushed


def _forget_if_lost_and_empty(client: redis.Redis, worker: str) -> None:
    with client.pipeline() as pipe:
        try:
            pipe.watch(inflight.inflight_key(worker), inflight.heartbeat_key(worker))  # type: ignore[no-untyped-call]
            if pipe.scard(inflight.inflight_key(worker)) or pipe.exists(inflight.heartbeat_key(worker)):
                return  # it took new work, so it is alive: its next heartbeat finds it registered
            pipe.multi()
            pipe.hdel(keys.WORKERS_KEY, worker)
            pipe.delete(inflight.inflight_key(worker))
            pipe.execute()
        except redis.WatchError:
            return


def _had_the_chance(entry: dict[str, Any], broker_since: float, uptime: float) -> bool:
    """Whether a worker could have refreshed its heartbeat since the broker (re)started.

    Heartbeat keys expire in broker time, outages included: after a Valkey restart every worker's key may be
    gone while the workers are still in their reconnect back-off. A worker that has not beaten since the
    restart is lost only once the broker has been up for ``WORKER_LOST_SECONDS + RECONNECT_SECONDS``.
    """
    try:
        beat_at = float(entry.get("beat_at") or 0)
    except (TypeError, ValueError):
        beat_at = 0.0
    return beat_at > broker_since or uptime >= load(BrokerSettings).worker_lost_seconds + RECONNECT_SECONDS


@housekeeping.every(REAP_SECONDS, name="reaper")
def reap_lost_workers(client: redis.Redis) -> dict[str, int]:
    """Reap every registered worker whose heartbeat expired: worker id -> messages returned."""
    workers = inflight.registered(client)
    if not workers:
        return {}
    pipe = client.pipeline(transaction=False)
    for worker in workers:
        pipe.exists(inflight.heartbeat_key(worker))
    alive = pipe.execute()
    lost = {w: e for (w, e), live in zip(workers.items(), alive, strict=True) if not live}
    if not lost:
        return {}
    uptime = float(client.info("server")["uptime_in_seconds"])
    broker_since = time.time() - uptime
    return {
        worker: reap(client, worker, entry)
        for worker, entry in lost.items()
        if _had_the_chance(entry, broker_since, uptime)
    }


class WorkerHeartbeat:
    """This worker process's heartbeat in Valkey, written with the probe file (one heartbeat, two places).

    Never raises: a broker outage must not stop the probe file (liveness is about the event loop).
    """

    def __init__(self, queue: str, nodename: str | None = None) -> None:
        from taskfleet_core.tasks.queues import QUEUES

        self.worker = inflight.mark_consumer()  # before the pool forks: claims in the children name this worker
        self.spec = QUEUES[queue]
        self.ttl = float(load(BrokerSettings).worker_lost_seconds)
        self.time_limit = float(self.spec.time_limit)
        self.nodename = nodename
        self.since = round(time.time())
        self._failing = False

    @property
    def entry(self) -> str:
        """The registry entry: queue, host, pid, Celery nodename, the unacked keys, since when, last beat."""
        return inflight.registration(
            self.spec.unacked_key,
            self.spec.unacked_index_key,
            queue=self.spec.name,
            nodename=self.nodename,
            since=self.since,
            beat_at=round(time.time(), 3),
        )

    @functools.cached_property
    def client(self) -> redis.Redis:
        # Short timeouts: this runs on the event loop that consumes.
        return redis.Redis.from_url(load(BrokerSettings).redis_url, socket_connect_timeout=2, socket_timeout=2)

    def interval(self, probe_interval: float) -> float:
        """Refresh often enough that a live worker's key never expires (three refreshes per TTL)."""
        return min(probe_interval, self.ttl / 3)

    def beat(self, ttl: float | None = None) -> None:
        from taskfleet_core.broker.transport import restore_orphans

        try:
            inflight.beat(self.client, ttl or self.ttl, self.entry)
            restore_orphans()  # deliveries of a channel closed while the broker was away
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("worker heartbeat not written to Valkey: %s", exc)
            self._failing = True
            return
        if self._failing:
            log.info("worker heartbeat written to Valkey again")
        self._failing = False

    def stopping(self) -> None:
        """The timer stops, but a warm shutdown may still finish running tasks: keep the worker alive until then."""
        self.beat(ttl=self.time_limit + self.ttl)

    def stopped(self) -> None:
        """After the shutdown: leave the registry; what is still recorded in flight goes to the reaper now."""
        try:
            if not inflight.forget(self.client):
                self.client.delete(inflight.heartbeat_key())
        except redis.RedisError as exc:
            log.warning("worker not removed from the registry: %s", exc)


def describe(client: redis.Redis) -> list[dict[str, Any]]:
    """Every registered worker with its heartbeat age and in-flight count (operators, tests)."""
    out = []
    for worker, entry in inflight.registered(client).items():
        beat = client.get(inflight.heartbeat_key(worker))
        out.append(
            {
                "worker": worker,
                **entry,
                "heartbeat_age": None if beat is None else round(time.time() - float(_text(beat)), 1),
                "in_flight": client.scard(inflight.inflight_key(worker)),
            }
        )
    return out
