"""Exactly one Beat sends: a Valkey leader lock with a TTL, renewed while the holder ticks.

``replicas: 1`` and ``strategy: Recreate`` keep a second Beat from starting in the normal case; the lock covers
the rest (a rollout overlap, a node partition, a paused process). A Beat without the lock keeps its schedule
moving (due entries are marked as run) but sends nothing: the leader sent them. When the leader dies the lock
expires after its TTL; the standby sleeps until exactly then (it reads the lock's PTTL) and takes over.

Like redbeat (``redbeat::lock``, extended every tick) but without moving the schedule into Valkey: seed 000's
table stays in code, and a standby that takes over starts from the same table. The lock is the fleet's one lock
primitive, ``TokenLock`` (taskfleet_core/reliability/locks.py), used reentrant with this process's token.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

import redis
from celery.beat import PersistentScheduler
from taskfleet_core.broker import client as valkey
from taskfleet_core.broker.keys import BEAT_LEADER_KEY
from taskfleet_core.observability import probes
from taskfleet_core.reliability.locks import TokenLock
from taskfleet_core.settings import load
from taskfleet_core.tasks.contracts import contract_for

from taskfleet_beat.settings import BeatSettings

log = logging.getLogger("taskfleet.beat.leader")

#: Probe name of Beat's heartbeat and ready files (python -m taskfleet_core.observability.probes live --name beat).
PROBE_NAME = "beat"


class LeaderLock:
    """The leader lock: a reentrant ``TokenLock`` whose token (host:pid:random) is this process's for life.

    Reentrant, because one ``acquire`` per refresh then means renew-or-take: the key already carries our token
    (we lead) and its TTL is reset, or it is free and we take it, or another Beat's token is in it and nothing
    changes. Its token is fixed at start, so ``release`` on close frees the lock only if we still lead.
    """

    def __init__(self, client: redis.Redis, ttl_seconds: float, key: str = BEAT_LEADER_KEY) -> None:
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: Monotonic time until which this process may act as leader (no later than the lock's expiry).
        self.valid_until = 0.0
        self._lock = TokenLock(client, key, ttl_seconds, token=self.token, reentrant=True)

    @property
    def renew_interval(self) -> float:
        """Renew three times per TTL: two renewals may fail before the lock lapses."""
        return self.ttl_ms / 3000

    @property
    def held(self) -> bool:
        return time.monotonic() < self.valid_until

    def refresh(self) -> bool:
        """Renew the lock if ours, else try to take it. Any Valkey error means "not leader": stay silent."""
        started = time.monotonic()
        try:
            ok = bool(self._lock.acquire(token=self.token))
        except redis.RedisError as exc:
            log.error("beat: cannot reach Valkey for the leader lock (%s); not sending", exc)
            ok = False
        # Count the TTL from before the call: the lock cannot outlive this bound.
        self.valid_until = started + self.ttl_ms / 1000 - 0.1 if ok else 0.0
        return ok

    def holder(self) -> str | None:
        try:
            return self._lock.holder()
        except redis.RedisError:
            return None

    def seconds_left(self) -> float:
        """Seconds until the current holder's lock expires (0 if free or unknown)."""
        try:
            return self._lock.seconds_left() or 0.0
        except redis.RedisError:
            return 0.0

    def release(self) -> None:
        with contextlib.suppress(redis.RedisError):  # else it expires on its own
            self._lock.try_release()
        self.valid_until = 0.0


class LeaderScheduler(PersistentScheduler):
    """Celery's PersistentScheduler whose ``apply_entry`` sends only while this Beat holds the lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.lock = LeaderLock(valkey.client(), load(BeatSettings).beat_lock_ttl_seconds)
        self._leading: bool | None = None  # unknown until the first tick: log either state once
        self._next_refresh = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        if now >= self._next_refresh or not self.lock.held:
            self._refresh(now)
        probes.touch(probes.heartbeat_path(PROBE_NAME))
        delay = super().tick(*args, **kwargs)
        return min(delay, max(self._next_refresh - time.monotonic(), 0.0))

    def _refresh(self, now: float) -> None:
        leading = self.lock.refresh()
        if leading != self._leading:
            if leading:
                log.info("beat: leader lock %s acquired (%s); sending due tasks", self.lock.key, self.lock.token)
            else:
                log.warning("beat: standby, %s is held by %s; not sending", self.lock.key, self.lock.holder())
        self._leading = leading
        if leading:
            self._next_refresh = now + self.lock.renew_interval
        else:
            # Wake just after the holder's lock would expire: a killed leader is replaced within the TTL.
            wait = self.lock.seconds_left() + 0.05
            self._next_refresh = now + min(max(wait, 0.05), self.lock.renew_interval)
        probes.touch(probes.ready_path(PROBE_NAME))

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        if not self.lock.held:
            log.debug("beat: standby, skipping %s (the leader sends it)", entry.name)
            return
        super().apply_entry(entry, producer=producer)

    def close(self) -> None:
        super().close()
        self.lock.release()
        probes.discard(probes.ready_path(PROBE_NAME))


def canary_schedule(settings: BeatSettings) -> dict[str, dict[str, Any]]:
    """An extra ``maintenance.health_check`` every BEAT_CANARY_INTERVAL_SECONDS (off at 0).

    Seed 000's table is untouched; this lets tests and operators see within seconds which Beat sends.
    """
    interval = settings.beat_canary_interval_seconds
    if not interval:
        return {}
    contract = contract_for("maintenance.health_check")
    return {
        "beat-canary": {
            "task": contract.name,
            "schedule": timedelta(seconds=interval),
            "kwargs": {},
            "options": {"queue": contract.queue},
        }
    }
