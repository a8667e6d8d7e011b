"""Beat never silently misses: the catch-up decision and each entry's last-sent record in Valkey.

Celery's Beat keeps ``last_run_at`` in its local schedule file, so a Beat that takes over (or restarts on a new
pod) does not know what fell due while no Beat was sending. Here the truth is in Valkey, shared by every Beat:
``BEAT_LAST_SENT_KEY`` holds, per entry, the most recent due time that was handled (sent, or given up as
missed) and when it was last sent. On every tick the leader compares each entry's most recent due time with
that record:

* no due time since the record: wait;
* the most recent due time lies within the entry's catch-up window (like a CronJob's
  ``startingDeadlineSeconds``): send it once, late; older due times in between are coalesced into it and
  those older than the window are counted as missed;
* the most recent due time is older than the window: send nothing, count the missed runs
  (``taskfleet_beat_missed_total{entry}``, alert ``TaskfleetBeatMissedRuns``) and log them.

Every outcome is written with a compare-and-set fenced by the leader lock (one Lua script): the record must
still be what this Beat read and the lock must still carry this Beat's token. Two Beats that briefly both
believe they lead therefore cannot both send the same due time.

Each occurrence is also recorded on its own before it is sent: the script that advances the record sets
``BEAT_OCCURRENCE_KEY`` (entry, nominal due time) with ``SET NX``, and an occurrence whose key exists is never
sent again, whatever a restarted Beat or a second leader read. The due time is the schedule's nominal one (a
crontab's minute; an interval's grid point), never the clock at send time, so every Beat names an occurrence
alike; the message carries it too (``taskfleet_beat_due`` header, and a task id derived from it, so a consumer's
idempotency sees one job per occurrence).

An entry without a record (the first start, a new entry, or Valkey lost its data) starts from ``baseline``:
every due time up to now counts as handled, an interval's on its epoch grid. After a data loss that may skip
the occurrence due at that moment (no Beat can know whether it was sent); it never sends one twice.

Default windows (``default_window``): half the entry's period, at least ``min(period, 30 s)`` (a tick a little
late is never a miss) and at most an hour; schedule.py sets longer ones per entry where lateness is harmless.
All times are UTC (``app.conf.timezone``): no DST.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import redis
from celery.schedules import BaseSchedule, crontab, schedule
from taskfleet_core.broker.keys import BEAT_LAST_SENT_KEY, BEAT_LEADER_KEY, BEAT_MISSED_KEY, BEAT_OCCURRENCE_KEY

#: Default catch-up window: this fraction of the entry's period ...
WINDOW_FRACTION = 0.5
#: ... but at least this (or the whole period when shorter), so a tick that runs a few seconds late never
#: counts as a miss ...
WINDOW_FLOOR = timedelta(seconds=30)
#: ... and at most this: a daily job more than an hour late is reported, not run at a surprising time.
WINDOW_CAP = timedelta(hours=1)
#: Due times counted one by one before the count becomes a lower bound (a very long outage of a */5 entry).
COUNT_LIMIT = 10_000

Action = Literal["wait", "send", "missed"]


@dataclass(frozen=True)
class Decision:
    action: Action
    #: The due time handled: the one sent, or the most recent one given up (None when waiting).
    due: datetime | None
    #: The next due time after ``due`` (or after the record, when waiting).
    next_due: datetime
    #: Due times not sent because they are older than the window.
    missed: int = 0
    window: timedelta = timedelta(0)


def next_due_after(sched: BaseSchedule, after: datetime) -> datetime:
    """The first due time strictly after ``after`` (UTC), independent of the clock."""
    if isinstance(sched, crontab):
        start, delta, _ = sched.remaining_delta(after)
        result: datetime = (start + delta).astimezone(UTC)
        return result
    if isinstance(sched, schedule):
        return after + every(sched)
    raise TypeError(f"no catch-up for {type(sched).__name__} schedules (crontab and intervals only)")


def every(sched: schedule) -> timedelta:
    """An interval schedule's period."""
    return timedelta(seconds=float(sched.seconds))


def period_at(sched: BaseSchedule, due: datetime) -> timedelta:
    """The gap from ``due`` to the next due time: an interval's period, a crontab's local one."""
    return next_due_after(sched, due) - due


def baseline(sched: BaseSchedule, now: datetime) -> datetime:
    """The handled-up-to time of an entry without a record: now, an interval's on its grid from the epoch.

    Every Beat computes the same value, so two Beats that both lost the record agree on the next occurrence.
    """
    if isinstance(sched, schedule):
        period = every(sched).total_seconds()
        return datetime.fromtimestamp(math.floor(now.timestamp() / period) * period, UTC)
    return now


def due_ms(due: datetime) -> int:
    """A nominal due time as unix milliseconds: the occurrence's name in keys and ids."""
    return round(due.timestamp() * 1000)


def occurrence_key(entry: str, due: datetime) -> str:
    return BEAT_OCCURRENCE_KEY.format(entry=entry, due_ms=due_ms(due))


def occurrence_id(entry: str, due: datetime) -> str:
    """The task id of an occurrence's message: the same for every Beat and every attempt."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"taskfleet-beat:{entry}:{due_ms(due)}"))


def occurrence_ttl(sched: BaseSchedule, due: datetime, window: timedelta) -> timedelta:
    """How long an occurrence's key lives: past the last moment any Beat would still send it, plus a minute."""
    return period_at(sched, due) + window + timedelta(minutes=1)


def default_window(period: timedelta) -> timedelta:
    return min(max(period * WINDOW_FRACTION, min(period, WINDOW_FLOOR)), WINDOW_CAP)


def decide(sched: BaseSchedule, last: datetime, now: datetime, window: timedelta | None = None) -> Decision:
    """What the leader does with one entry whose due times up to ``last`` are handled.

    ``window`` None means ``default_window`` of the entry's period at its most recent due time.
    """
    first = next_due_after(sched, last)
    if first > now:
        return Decision("wait", None, first, window=window or timedelta(0))
    if isinstance(sched, schedule):
        period = every(sched)
        count = math.floor((now - last) / period)  # due times last + i * period, 1 <= i <= count
        recent = last + count * period
        win = window if window is not None else default_window(period)
        old = max(0, min(count, math.ceil((now - win - last) / period) - 1))  # those before now - win
    else:
        dues, skipped = [first], 0
        while (following := next_due_after(sched, dues[-1])) <= now:
            if len(dues) >= COUNT_LIMIT:  # a very long outage: count what was skipped, jump to the last weeks
                jump = next_due_after(sched, max(following, now - timedelta(days=32)))
                jump = jump if jump <= now else following
                skipped += len(dues) + (jump > following)
                dues = [jump]
                continue
            dues.append(following)
        recent = dues[-1]
        win = window if window is not None else default_window(period_at(sched, recent))
        old = skipped + sum(1 for due in dues if now - due > win)
    following = next_due_after(sched, recent)
    if now - recent > win:
        return Decision("missed", recent, following, old, win)
    return Decision("send", recent, following, old, win)


# -- the record in Valkey --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One entry's state in ``BEAT_LAST_SENT_KEY``: due times up to ``due`` are handled."""

    due: float
    sent_at: float | None = None
    outcome: str = "baseline"  # "sent", "missed", or "baseline" (the first leader's start, nothing sent yet)
    by: str = ""

    def encode(self) -> str:
        return json.dumps(
            {"due": self.due, "sent_at": self.sent_at, "outcome": self.outcome, "by": self.by}, sort_keys=True
        )

    @classmethod
    def decode(cls, raw: str) -> Record:
        data = json.loads(raw)
        return cls(float(data["due"]), data.get("sent_at"), data.get("outcome", "sent"), data.get("by", ""))

    @property
    def due_at(self) -> datetime:
        return datetime.fromtimestamp(self.due, UTC)


#: Compare-and-set one entry's record, fenced by the leader lock.
#: KEYS: last-sent hash, leader key, missed hash. ARGV: entry, expected ('' = absent), new ('' = delete),
#: the leader's token, missed runs to add. Returns 1 when set, 0 when the record changed, -1 when not leader.
_SWAP = """
if redis.call('GET', KEYS[2]) ~= ARGV[4] then return -1 end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == false then current = '' end
if current ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
local missed = tonumber(ARGV[5])
if missed ~= 0 then redis.call('HINCRBY', KEYS[3], ARGV[1], missed) end
return 1
"""


#: Claim one occurrence before sending it: _SWAP's fenced compare-and-set of the record, and ``SET NX`` of the
#: occurrence's key in the same step. KEYS: last-sent hash, leader key, missed hash, occurrence key. ARGV: entry,
#: expected, new, the leader's token, missed runs to add, the key's TTL in ms. Returns -1 (not leader), 0 (the
#: record changed), 1 (claimed: send it) or 2 (the occurrence was claimed before: the record moves on, no send).
_CLAIM = """
if redis.call('GET', KEYS[2]) ~= ARGV[4] then return -1 end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current == false then current = '' end
if current ~= ARGV[2] then return 0 end
local fresh = redis.call('SET', KEYS[4], ARGV[4], 'NX', 'PX', ARGV[6])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local missed = tonumber(ARGV[5])
if missed ~= 0 then redis.call('HINCRBY', KEYS[3], ARGV[1], missed) end
if fresh then return 1 end
return 2
"""

#: Undo a claim whose send failed (it is retried): the occurrence's key if this leader set it, and the record if
#: it is still the claimed one. KEYS as _CLAIM. ARGV: entry, the record before, the claimed record, the token,
#: missed runs the claim added. Returns -1 (not leader) or 1.
_RELEASE = """
if redis.call('GET', KEYS[2]) ~= ARGV[4] then return -1 end
if redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[3] then
  if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
  local missed = tonumber(ARGV[5])
  if missed ~= 0 then redis.call('HINCRBY', KEYS[3], ARGV[1], -missed) end
end
return 1
"""


class RecordStore:
    """Reads and compare-and-sets the per-entry records; every write requires the leader lock's token."""

    def __init__(self, client: redis.Redis, leader_key: str = BEAT_LEADER_KEY) -> None:
        self.client = client
        self.leader_key = leader_key
        self._swap: Any = client.register_script(_SWAP)
        self._claim: Any = client.register_script(_CLAIM)
        self._release: Any = client.register_script(_RELEASE)

    def read_all(self) -> dict[str, str]:
        """Raw records by entry name (the raw string is what a swap compares against)."""
        return {str(k): str(v) for k, v in self.client.hgetall(BEAT_LAST_SENT_KEY).items()}

    def swap(self, entry: str, expected: str, new: str, token: str, missed: int = 0) -> int:
        keys = [BEAT_LAST_SENT_KEY, self.leader_key, BEAT_MISSED_KEY]
        return int(self._swap(keys=keys, args=[entry, expected, new, token, missed]))

    def claim(
        self, entry: str, expected: str, new: str, token: str, due: datetime, ttl: timedelta, missed: int = 0
    ) -> int:
        """Record that ``entry``'s occurrence at ``due`` is being sent (before the send); see ``_CLAIM``."""
        keys = [BEAT_LAST_SENT_KEY, self.leader_key, BEAT_MISSED_KEY, occurrence_key(entry, due)]
        ttl_ms = max(1, int(ttl.total_seconds() * 1000))
        return int(self._claim(keys=keys, args=[entry, expected, new, token, missed, ttl_ms]))

    def release(self, entry: str, expected: str, new: str, token: str, due: datetime, missed: int = 0) -> int:
        """Undo ``claim`` after a failed send, so the occurrence is retried; see ``_RELEASE``."""
        keys = [BEAT_LAST_SENT_KEY, self.leader_key, BEAT_MISSED_KEY, occurrence_key(entry, due)]
        return int(self._release(keys=keys, args=[entry, expected, new, token, missed]))

    def occurrence_holder(self, entry: str, due: datetime) -> str | None:
        """The token of the leader that claimed an occurrence, or None (never claimed, or expired)."""
        value = self.client.get(occurrence_key(entry, due))
        return None if value is None else str(value)

    def missed_counts(self) -> dict[str, int]:
        return {str(name): int(value) for name, value in self.client.hgetall(BEAT_MISSED_KEY).items()}
