"""The dead-letter queue: where a job goes when the fleet gives up on it, instead of vanishing.

One DLQ per queue in Valkey: a ZSET ``taskfleet:dlq:<queue>`` of entry ids scored by the
time they were dead-lettered (paging, oldest first) and one JSON string per entry holding
everything an operator needs to decide: the payload (task, args, kwargs or the raw body),
the exception, a traceback summary, the retries spent and the timestamps.

Entries are keyed by the job id when there is one, so a job dead-lettered twice (the worker
died after the failure hook but before the ack, and the message came back) is one entry.
Malformed messages without an id get a fresh one. Entries expire after ``RETENTION_SECONDS``
so a forgotten DLQ cannot fill Valkey (``noeviction`` would then refuse every write).
"""

from __future__ import annotations

import json
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import redis

from taskfleet_core.broker.keys import DLQ_ENTRY_KEY, DLQ_INDEX_KEY
from taskfleet_core.tasks.queues import QUEUES

#: Entries older than this are dropped: long enough for a holiday, short enough to bound memory.
RETENTION_SECONDS = 30 * 24 * 3600
#: A traceback summary keeps the last frames only: enough to find the line, small in Valkey.
TRACEBACK_LINES = 20
#: Raw bodies of malformed messages are kept up to this many characters.
RAW_BODY_MAX = 64 * 1024

#: Why a message was dead-lettered.
EXHAUSTED = "retries_exhausted"
PERMANENT = "permanent_failure"
TIMEOUT = "time_limit"
UNKNOWN_TASK = "unknown_task"
MALFORMED = "malformed"
REDELIVERY_LIMIT = "redelivery_limit"
REASONS = (EXHAUSTED, PERMANENT, TIMEOUT, UNKNOWN_TASK, MALFORMED, REDELIVERY_LIMIT)

#: Header a replayed job carries, naming the job it replays.
REPLAY_OF_HEADER = "taskfleet_replay_of"


@dataclass
class DeadLetter:
    id: str
    queue: str
    reason: str
    task: str | None
    job_id: str | None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    raw_body: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    exception_type: str | None = None
    exception_message: str | None = None
    traceback: str | None = None
    retries: int = 0
    first_seen_at: str = ""
    dead_lettered_at: str = ""
    times_dead_lettered: int = 1
    replay_of: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeadLetter:
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @property
    def replayable(self) -> bool:
        """Only a message whose task has a contract can be sent again; a raw malformed body cannot."""
        from taskfleet_core.tasks.contracts import CONTRACTS

        return self.reason != MALFORMED and self.task in CONTRACTS


def _now() -> str:
    return datetime.now(UTC).isoformat()


def summarise_traceback(exc: BaseException | None, tb: str | None = None) -> str | None:
    """The last frames of a traceback: where it failed, without megabytes of stack."""
    if tb is None and exc is not None and exc.__traceback__ is not None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if not tb:
        return None
    lines = tb.rstrip().splitlines()
    return "\n".join(lines[-TRACEBACK_LINES:])


def jsonable(value: Any) -> Any:
    """Arguments as JSON (they came off a JSON-only broker; anything else becomes its repr)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


class DeadLetterQueue:
    """List, inspect, add, remove and purge dead letters of every queue."""

    def __init__(self, client: redis.Redis, retention_seconds: int = RETENTION_SECONDS) -> None:
        self.client = client
        self.retention = retention_seconds

    # --- writing -------------------------------------------------------------------------------
    def add(self, entry: DeadLetter) -> DeadLetter:
        """Store an entry; the same id again counts up ``times_dead_lettered`` and keeps the first time."""
        if entry.queue not in QUEUES:
            entry.queue = "default"
        now = time.time()
        entry.dead_lettered_at = entry.dead_lettered_at or _now()
        key = DLQ_ENTRY_KEY.format(entry_id=entry.id)
        previous = self.client.get(key)
        if previous is not None:
            old = DeadLetter.from_json(previous)
            entry.first_seen_at = old.first_seen_at or entry.first_seen_at
            entry.times_dead_lettered = old.times_dead_lettered + 1
        entry.first_seen_at = entry.first_seen_at or entry.dead_lettered_at
        index = DLQ_INDEX_KEY.format(queue=entry.queue)
        pipe = self.client.pipeline()
        pipe.set(key, entry.to_json(), ex=self.retention)
        pipe.zadd(index, {entry.id: now}, nx=True)  # keep its place in the order
        pipe.zremrangebyscore(index, "-inf", now - self.retention)
        pipe.execute()
        return entry

    def add_failure(
        self,
        *,
        queue: str,
        task: str,
        job_id: str | None,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        exc: BaseException,
        reason: str,
        retries: int = 0,
        traceback_text: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> DeadLetter:
        headers = dict(headers or {})
        return self.add(
            DeadLetter(
                id=job_id or uuid.uuid4().hex,
                queue=queue,
                reason=reason,
                task=task,
                job_id=job_id,
                args=jsonable(list(args or [])),
                kwargs=jsonable(dict(kwargs or {})),
                headers=jsonable(headers),
                exception_type=type(exc).__name__,
                exception_message=str(exc)[:2000],
                traceback=summarise_traceback(exc, traceback_text),
                retries=retries,
                replay_of=headers.get(REPLAY_OF_HEADER),
            )
        )

    # --- reading -------------------------------------------------------------------------------
    def get(self, entry_id: str) -> DeadLetter | None:
        raw = self.client.get(DLQ_ENTRY_KEY.format(entry_id=entry_id))
        return None if raw is None else DeadLetter.from_json(raw)

    def sizes(self) -> dict[str, int]:
        """Entries per queue (the queue exporter's ``taskfleet_dlq_length`` gauge)."""
        pipe = self.client.pipeline(transaction=False)
        for name in QUEUES:
            pipe.zcard(DLQ_INDEX_KEY.format(queue=name))
        return dict(zip(QUEUES, pipe.execute(), strict=True))

    def iter(
        self, queue: str | None = None, task: str | None = None, reason: str | None = None
    ) -> Iterator[DeadLetter]:
        """Matching entries, oldest first; index members whose entry expired are cleaned up on the way."""
        for name in [queue] if queue else list(QUEUES):
            index = DLQ_INDEX_KEY.format(queue=name)
            ids = cast("list[str]", self.client.zrange(index, 0, -1))  # the fleet's clients decode responses
            for start in range(0, len(ids), 200):
                chunk = ids[start : start + 200]
                raws = self.client.mget([DLQ_ENTRY_KEY.format(entry_id=i) for i in chunk])
                for entry_id, raw in zip(chunk, raws, strict=True):
                    if raw is None:
                        self.client.zrem(index, entry_id)
                        continue
                    entry = DeadLetter.from_json(raw)
                    if task and entry.task != task:
                        continue
                    if reason and entry.reason != reason:
                        continue
                    yield entry

    def page(
        self,
        queue: str | None = None,
        task: str | None = None,
        reason: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[DeadLetter]]:
        """(total matching, one page of them)."""
        total = 0
        items: list[DeadLetter] = []
        for entry in self.iter(queue, task, reason):
            if offset <= total < offset + limit:
                items.append(entry)
            total += 1
        return total, items

    # --- removing ------------------------------------------------------------------------------
    def remove(self, entry: DeadLetter) -> bool:
        pipe = self.client.pipeline()
        pipe.zrem(DLQ_INDEX_KEY.format(queue=entry.queue), entry.id)
        pipe.delete(DLQ_ENTRY_KEY.format(entry_id=entry.id))
        removed, _ = pipe.execute()
        return bool(removed)

    def purge(self, queue: str | None = None, task: str | None = None, reason: str | None = None) -> int:
        return sum(self.remove(entry) for entry in list(self.iter(queue, task, reason)))


def dead_letter_queue() -> DeadLetterQueue:
    from taskfleet_core.broker.client import client

    return DeadLetterQueue(client())
