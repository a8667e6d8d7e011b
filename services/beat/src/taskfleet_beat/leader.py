"""Exactly one Beat sends: a Valkey leader lock with a TTL, renewed while the holder ticks.

``replicas: 1`` and ``strategy: Recreate`` keep a second Beat from starting in the normal case; the lock covers
the rest (a rollout overlap, a node partition, a paused process). A Beat without the lock sends nothing and
leaves its schedule alone. When the leader dies the lock expires after its TTL; the standby sleeps until exactly
then (it reads the lock's PTTL) and takes over.

What fell due while no Beat sent is not lost: each entry's last handled due time lives in Valkey
(``BEAT_LAST_SENT_KEY``, catchup.py), so the new leader, or a Beat restarted alone, sends it late within the
entry's catch-up window, or counts it as missed (``taskfleet_beat_missed_total``) and logs it. Each outcome is a
compare-and-set fenced by this lock, and each send is claimed first (``SET NX`` of the occurrence's key, in the
same script), so a due time is sent once even when two Beats overlap, a Beat restarts, or the lock is lost.

Like redbeat (``redbeat::lock``, extended every tick; last-run times in Valkey) but the schedule itself stays in
code: seed 000's table, and a standby that takes over starts from the same table. The lock is the fleet's one
lock primitive, ``TokenLock`` (taskfleet_core/reliability/locks.py), used reentrant with this process's token.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery.beat import PersistentScheduler
from taskfleet_core.broker import client as valkey
from taskfleet_core.broker.keys import BEAT_LEADER_KEY
from taskfleet_core.observability import probes
from taskfleet_core.reliability.locks import TokenLock
from taskfleet_core.settings import load
from taskfleet_core.tasks.contracts import contract_for

from taskfleet_beat import catchup
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
    """Celery's PersistentScheduler driven by the Valkey records: only the lock holder sends, and it catches up.

    A standby does not touch its schedule at all (it only renews its view of the lock). The leader decides each
    entry from the shared record (catchup.decide): send what is due (late, within the entry's catch-up window),
    count what is older as missed; every outcome is a fenced compare-and-set, then the send. The local schedule
    file mirrors the records (the baseline when Valkey has none).
    """

    #: After a failed publish the claim is undone and the entry retried this much later.
    RETRY_SECONDS = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.lock = LeaderLock(valkey.client(), load(BeatSettings).beat_lock_ttl_seconds)
        self.records = catchup.RecordStore(valkey.client(), self.lock.key)
        self._leading: bool | None = None  # unknown until the first tick: log either state once
        self._next_refresh = 0.0
        self._retry_at: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    @property
    def windows(self) -> dict[str, float]:
        """Catch-up windows set per entry (app.conf.taskfleet_beat_catch_up, seconds); others use the default."""
        return dict(self.app.conf.get("taskfleet_beat_catch_up") or {})

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        if now >= self._next_refresh or not self.lock.held:
            self._refresh(now)
        probes.touch(probes.heartbeat_path(PROBE_NAME))
        until_refresh = max(self._next_refresh - time.monotonic(), 0.0)
        if not self.lock.held:
            return until_refresh  # a standby neither sends nor marks anything as run
        return min(self._run_due(), until_refresh, float(self.max_interval or 300))

    def _refresh(self, now: float) -> None:
        leading = self.lock.refresh()
        if leading != self._leading:
            if leading:
                log.info("beat: leader lock %s acquired (%s); sending due tasks", self.lock.key, self.lock.token)
                self._seed_records()
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

    def _seed_records(self) -> None:
        """Entries without a record get their baseline when this Beat becomes leader."""
        try:
            known = self.records.read_all()
            for name, entry in self.schedule.items():
                if name not in known:
                    self._seed(name, entry, datetime.now(UTC))
        except redis.RedisError as exc:
            log.error("beat: cannot seed the last-sent records (%s); retrying next tick", exc)

    def _seed(self, name: str, entry: Any, now: datetime) -> str:
        """Write the baseline record of an entry that has none (catchup.baseline); returns the record now stored.

        Not this Beat's local file: a standby's file says nothing about what the leader sent, and after Valkey
        lost its data, treating due times up to now as handled is what keeps an occurrence from going out twice.
        """
        assert entry.schedule is not None
        since = catchup.baseline(entry.schedule, now)
        record = catchup.Record(since.timestamp(), None, "baseline", self.lock.token).encode()
        if self.records.swap(name, "", record, self.lock.token) == 1:
            log.info(
                "beat: no record of %s in Valkey (first start, or lost data); due times up to %s count as handled",
                name,
                since.isoformat(timespec="seconds"),
            )
            return record
        return self.records.read_all().get(name, "")

    def _run_due(self) -> float:
        """Handle every entry that is due; seconds until the next due time."""
        try:
            records = self.records.read_all()
        except redis.RedisError as exc:
            log.error("beat: cannot read the last-sent records (%s); not sending", exc)
            return self.RETRY_SECONDS
        now = datetime.now(UTC)
        soonest = float(self.max_interval or 300)
        windows = self.windows
        for name, entry in list(self.schedule.items()):
            retry_in = self._retry_at.get(name, 0.0) - time.monotonic()
            if retry_in > 0:
                soonest = min(soonest, retry_in)
                continue
            raw = records.get(name, "")
            if not raw:  # lost while this Beat leads (Valkey lost data): a baseline, as on taking over
                try:
                    raw = self._seed(name, entry, now)
                except redis.RedisError as exc:
                    log.error("beat: cannot seed the record of %s (%s); retrying later", name, exc)
                if not raw:
                    soonest = min(soonest, self.RETRY_SECONDS)
                    continue
            try:
                last = catchup.Record.decode(raw).due_at
                window = timedelta(seconds=windows[name]) if name in windows else None
                assert entry.schedule is not None
                decision = catchup.decide(entry.schedule, last, now, window)
            except Exception:
                log.exception("beat: cannot decide whether %s is due; retrying later", name)
                soonest = min(soonest, self.RETRY_SECONDS)
                continue
            if decision.action != "wait":
                self._handle(entry, raw, decision, now)
                if not self.lock.held:
                    return 0.0  # lost the lock mid-tick: the next tick refreshes it
            soonest = min(soonest, (decision.next_due - datetime.now(UTC)).total_seconds())
        return max(soonest, 0.0)

    def _handle(self, entry: Any, expected: str, decision: catchup.Decision, now: datetime) -> None:
        assert decision.due is not None
        previous = catchup.Record.decode(expected) if expected else None
        send = decision.action == "send"
        sent_at = now.timestamp() if send else (previous.sent_at if previous else None)
        record = catchup.Record(decision.due.timestamp(), sent_at, "sent" if send else "missed", self.lock.token)
        new = record.encode()
        try:
            if send:  # the occurrence is recorded (SET NX) before it is sent
                ttl = catchup.occurrence_ttl(entry.schedule, decision.due, decision.window)
                swapped = self.records.claim(
                    entry.name, expected, new, self.lock.token, decision.due, ttl, decision.missed
                )
            else:
                swapped = self.records.swap(entry.name, expected, new, self.lock.token, decision.missed)
        except redis.RedisError as exc:
            log.error("beat: cannot record %s (%s); not sending it now", entry.name, exc)
            self._retry_at[entry.name] = time.monotonic() + self.RETRY_SECONDS
            return
        if swapped < 0:
            log.warning("beat: lost the leader lock before sending %s; not sending", entry.name)
            self.lock.valid_until = 0.0
            return
        if swapped == 0:
            log.info("beat: %s was handled by another Beat meanwhile; not sending it again", entry.name)
            return
        late = (now - decision.due).total_seconds()
        window = decision.window.total_seconds()
        if decision.missed:
            log.error(
                "beat: MISSED %d run(s) of %s due before %s, older than its catch-up window of %.0fs; not sent",
                decision.missed,
                entry.name,
                (now - decision.window).isoformat(timespec="seconds"),
                window,
            )
        self.schedule[entry.name] = entry._next_instance(decision.due)  # the local file mirrors the record
        if not send:
            return
        if swapped == 2:
            log.warning(
                "beat: %s due at %s was already sent (its occurrence is recorded); not sending it again",
                entry.name,
                decision.due.isoformat(),
            )
            return
        catching_up = f" (catch-up: due at {decision.due.isoformat()}, {late:.1f}s late)" if late > 1 else ""
        log.info("Scheduler: Sending due task %s (%s)%s", entry.name, entry.task, catching_up)
        try:
            self.apply_async(occurrence(entry, decision.due), producer=self.producer, advance=False)
        except Exception as exc:
            log.error("beat: sending %s failed (%s); will retry in %.0fs", entry.name, exc, self.RETRY_SECONDS)
            with contextlib.suppress(redis.RedisError):
                self.records.release(entry.name, expected, new, self.lock.token, decision.due, decision.missed)
            self.schedule[entry.name] = entry
            self._retry_at[entry.name] = time.monotonic() + self.RETRY_SECONDS

    def close(self) -> None:
        super().close()
        self.lock.release()
        probes.discard(probes.ready_path(PROBE_NAME))


#: The message header naming the nominal due time (ISO 8601, UTC) of the occurrence a Beat message sends.
DUE_HEADER = "taskfleet_beat_due"


def occurrence(entry: Any, due: datetime) -> Any:
    """The entry as sent for its occurrence at ``due``: a task id derived from (entry, due) and the due header.

    Every Beat and every retry of one occurrence sends the same id, so a consumer's idempotency (keyed by the
    job id) is a second line behind the occurrence record.
    """
    sending = copy.copy(entry)
    headers = {**entry.options.get("headers", {}), DUE_HEADER: due.astimezone(UTC).isoformat()}
    sending.options = {**entry.options, "task_id": catchup.occurrence_id(entry.name, due), "headers": headers}
    return sending


def canary_catch_up(settings: BeatSettings) -> dict[str, float]:
    """The canary's catch-up window when BEAT_CANARY_CATCH_UP_SECONDS is set (else the default for its period)."""
    if not settings.beat_canary_interval_seconds or settings.beat_canary_catch_up_seconds is None:
        return {}
    return {"beat-canary": settings.beat_canary_catch_up_seconds}


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
