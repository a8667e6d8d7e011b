"""What the console shows, read from the places the fleet already keeps it (no state of its own but samples).

* queues: ``catalog.list_queues`` (the numbers KEDA and ``GET /api/v1/queues`` use) plus DLQ sizes;
* sparklines: a bounded history of those numbers, sampled here (see ``sample``);
* workers: the heartbeat registry (broker/inflight.py) and each worker's in-flight set;
* Beat: the seed schedule (taskfleet_beat.schedule) with the shared last-sent/missed records (catchup.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

from taskfleet_beat import catchup
from taskfleet_beat import schedule as beat_schedule
from taskfleet_beat.settings import BeatSettings
from taskfleet_core.broker import inflight, keys
from taskfleet_core.broker.client import client
from taskfleet_core.reliability.dlq import DeadLetterQueue
from taskfleet_core.settings import load
from taskfleet_core.tasks.queues import QUEUES

from taskfleet_api import catalog

#: LIST of samples, newest first: JSON {"t", "q": {queue: [waiting, scheduled, in_flight, dlq]}}. Shared by every
#: API replica, capped at SAMPLES entries; TTL a day (a console nobody opens leaves nothing behind).
SAMPLES_KEY = keys.KEY_PREFIX + "console:samples"
#: STRING lock: at most one sample per SAMPLE_SECONDS, however many browsers poll.
SAMPLE_LOCK_KEY = keys.KEY_PREFIX + "console:sample-lock"
SAMPLES = 120
SAMPLE_SECONDS = 2.0
SERIES = ("waiting", "scheduled", "in_flight", "dlq")


@dataclass
class QueueRow:
    name: str
    purpose: str
    waiting: int
    scheduled: int
    in_flight: int
    dlq: int
    history: dict[str, list[int]] = field(default_factory=dict)


def queues() -> list[QueueRow]:
    """Each queue's counts now, with their sampled history (oldest first)."""
    sizes = DeadLetterQueue(client()).sizes()
    rows = [
        QueueRow(q.name, q.purpose, q.waiting, q.scheduled, q.in_flight, sizes.get(q.name, 0))
        for q in catalog.list_queues()
    ]
    history = sample(rows)
    for row in rows:
        row.history = {s: [point[row.name][i] for point in history if row.name in point] for i, s in enumerate(SERIES)}
    return rows


def sample(rows: list[QueueRow], now: float | None = None) -> list[dict[str, list[int]]]:
    """Record ``rows`` as a sample unless one was taken in the last SAMPLE_SECONDS; the history, oldest first.

    The history lives in Valkey rather than in the process, so every replica draws the same lines and a
    restarted API keeps them.
    """
    now = time.time() if now is None else now
    db = client()
    if db.set(SAMPLE_LOCK_KEY, "1", nx=True, px=int(SAMPLE_SECONDS * 1000)):
        point = {"t": round(now, 3), "q": {r.name: [r.waiting, r.scheduled, r.in_flight, r.dlq] for r in rows}}
        pipe = db.pipeline()
        pipe.lpush(SAMPLES_KEY, json.dumps(point))
        pipe.ltrim(SAMPLES_KEY, 0, SAMPLES - 1)
        pipe.expire(SAMPLES_KEY, 24 * 3600)
        pipe.execute()
    raw = cast(list[str], db.lrange(SAMPLES_KEY, 0, SAMPLES - 1))
    return [json.loads(item)["q"] for item in reversed(raw)]


@dataclass
class WorkerRow:
    id: str
    queue: str
    host: str
    pid: int | None
    concurrency: int
    alive: bool
    last_beat: str | None
    since: str | None
    running: list[dict[str, str]]


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def workers() -> list[WorkerRow]:
    """Registered worker processes, alive when their heartbeat key has not expired; what each holds in flight
    (delivery tags from its in-flight set, looked up in its queue's unacked hash)."""
    db = client()
    registry = inflight.registered(db)
    rows: list[WorkerRow] = []
    for worker, entry in sorted(registry.items()):
        pipe = db.pipeline(transaction=False)
        pipe.get(inflight.heartbeat_key(worker))
        pipe.smembers(inflight.inflight_key(worker))
        beat_raw, tags = pipe.execute()
        unacked_key = entry.get("unacked_key")
        running: list[dict[str, str]] = []
        if tags and unacked_key:
            for raw in db.hmget(unacked_key, sorted(tags)):
                if raw:
                    running.append(_running(raw))
        queue = str(entry.get("queue") or "")
        spec = QUEUES.get(queue)
        rows.append(
            WorkerRow(
                id=worker,
                queue=queue or "?",
                host=str(entry.get("host", "")),
                pid=entry.get("pid"),
                concurrency=spec.concurrency if spec else 0,
                alive=beat_raw is not None,
                last_beat=_iso(float(beat_raw)) if beat_raw else _iso(entry.get("beat_at")),
                since=_iso(entry.get("since")),
                running=running,
            )
        )
    return rows


def _running(raw: str | bytes) -> dict[str, str]:
    """One unacked entry (kombu stores ``[message, exchange, routing_key]``): the task's name and id."""
    try:
        message = json.loads(raw)[0]
        headers = message.get("headers", {})
        return {"id": str(headers.get("id", "?")), "task": str(headers.get("task", "?"))}
    except (ValueError, LookupError, AttributeError, TypeError):
        return {"id": "?", "task": "?"}


@dataclass
class BeatRow:
    name: str
    task: str
    schedule: str
    description: str
    last_due: str | None
    last_sent: str | None
    outcome: str | None
    next_due: str | None
    missed: int
    overdue: bool


def beat_entries(now: datetime | None = None) -> tuple[list[BeatRow], str | None]:
    """Each schedule entry with its last handled due time, last send, next due time and missed runs; and which
    Beat leads (None: no Beat holds the lock, so nothing is being sent)."""
    now = now or datetime.now(UTC)
    db = client()
    store = catchup.RecordStore(db)
    records = store.read_all()
    missed = store.missed_counts()
    settings = load(BeatSettings)
    windows = beat_schedule.catch_up_windows(settings)
    rows: list[BeatRow] = []
    seen: set[str] = set()
    for entry in beat_schedule.entries(settings):
        seen.add(entry.name)
        record = catchup.Record.decode(records[entry.name]) if entry.name in records else None
        base = record.due_at if record else now
        following = catchup.next_due_after(entry.schedule, base)
        window = timedelta(seconds=windows[entry.name]) if entry.name in windows else None
        overdue = record is not None and catchup.decide(entry.schedule, base, now, window).action == "missed"
        rows.append(_beat_row(entry.name, entry.task, str(entry.schedule), entry.description, record, following))
        rows[-1].missed, rows[-1].overdue = missed.get(entry.name, 0), overdue
    for name in sorted(set(records) - seen):  # entries outside the seed table (the Beat canary): records only
        record = catchup.Record.decode(records[name])
        rows.append(_beat_row(name, "?", "(set by Beat's own settings)", "", record, None))
        rows[-1].missed = missed.get(name, 0)
    leader = db.get(keys.BEAT_LEADER_KEY)
    return rows, str(leader) if leader else None


def _beat_row(
    name: str, task: str, sched: str, description: str, record: catchup.Record | None, following: datetime | None
) -> BeatRow:
    return BeatRow(
        name=name,
        task=task,
        schedule=sched,
        description=description,
        last_due=record.due_at.isoformat(timespec="seconds") if record else None,
        last_sent=_iso(record.sent_at) if record else None,
        outcome=record.outcome if record else None,
        next_due=following.isoformat(timespec="seconds") if following else None,
        missed=0,
        overdue=False,
    )
