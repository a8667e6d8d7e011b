"""The dead-letter queue: where a job goes when the fleet gives up on it, instead of vanishing.

One DLQ per queue in Valkey: a ZSET ``taskfleet:dlq:<queue>`` of entry ids scored by the
time they were dead-lettered (paging, oldest first) and one JSON string per entry holding
everything an operator needs to decide: the payload (task, args, kwargs or the raw body),
the exception, a traceback summary, the retries spent and the timestamps.

Entries are keyed by the job id when there is one, so a job dead-lettered twice (the worker
died after the failure hook but before the ack, and the message came back) is one entry.
Malformed messages without an id get a fresh one. Entries expire after ``RETENTION_SECONDS``
so a forgotten DLQ cannot fill Valkey (``noeviction`` would then refuse every write).

Every write is one Lua script, so concurrent callers cannot lose updates or act twice:

* ``add`` reads the stored entry, counts ``times_dead_lettered`` up, keeps ``first_seen_at`` and indexes it
  in one step (20 concurrent adds of one id count 20);
* ``iter`` drops an index member only if its entry is still gone when the drop runs (a stale read never
  unindexes an entry re-added meanwhile);
* a replay or purge *claims* its entry: the script that deletes the entry is the one that acts. A replay's
  script also pushes the new job's message onto the queue's list (with the doorbell ring and the job record)
  in the same step, so there is no moment where an entry is claimed but its job not yet published: a crash
  anywhere leaves either the entry in the DLQ or the job on its queue, never neither and never both. It
  refuses while the original job still has a delivery in flight (held by a worker, waiting in its queue,
  scheduled) or has succeeded since (a late redelivery ran it). What happened is written to a *settled*
  record, which a retried or concurrent request reads back (same new job id) instead of acting again.

A replay's job id is derived from the entry (its id and ``first_seen_at``), so every attempt to replay the
same entry names the same job.
"""

from __future__ import annotations

import json
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import redis

from taskfleet_core.broker import fetch
from taskfleet_core.broker.keys import DLQ_ENTRY_KEY, DLQ_INDEX_KEY, DLQ_SETTLED_KEY, JOB_KEY, SCHEDULED_MESSAGES_KEY
from taskfleet_core.tasks.queues import QUEUES

if TYPE_CHECKING:
    from celery import Celery

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

#: How long a settled record (replayed as / purged) answers retried and concurrent requests for its entry.
SETTLED_SECONDS = 24 * 3600
#: A message restored by the reaper or the visibility timeout is pushed onto the consuming end of its list
#: (kombu's RPUSH), so the replay check looks at this many messages at that end of each list, not the whole
#: backlog (which a script would have to copy: milliseconds per thousand messages, blocking Valkey).
RESTORED_SCAN = 500
#: Index members whose entry is gone, dropped per ``add`` at most (bounds the script's work).
TRIM_BATCH = 100
#: Namespace of replay job ids (uuid5 of the entry id and its first dead-lettering).
REPLAY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://taskfleet/dlq/replay")

#: What became of a claim.
REPLAYED = "replayed"  # this call replayed the entry
ALREADY_REPLAYED = "already_replayed"  # an earlier or concurrent call did (the same new job id)
PURGED = "purged"  # this call purged it
ALREADY_PURGED = "already_purged"  # an earlier or concurrent call did
MISSING = "missing"  # never there, or settled longer ago than SETTLED_SECONDS
IN_FLIGHT = "in_flight"  # the original job still has a delivery: a replay now could run it twice
SUCCEEDED = "succeeded"  # the original job succeeded after it was dead-lettered (a late redelivery ran it)
UNREPLAYABLE = "unreplayable"  # no contract for its task, or a raw malformed body

#: KEYS: entry STRING, index ZSET. ARGV: the entry as a JSON object without ``first_seen_at`` and
#: ``times_dead_lettered``, the first-seen time to use if the entry is new, retention (s), now (epoch s),
#: entry id, the entry key prefix, trim batch. The two counted fields are appended to the object here (the
#: caller's JSON is never re-encoded: cjson would turn ``[]`` into ``{}`` and round big integers).
#: Returns {times_dead_lettered, first_seen_at}.
ADD_LUA = """
local first, times = ARGV[2], 1
local old = redis.call('GET', KEYS[1])
if old then
  local ok, e = pcall(cjson.decode, old)
  if ok and type(e) == 'table' then
    if type(e.first_seen_at) == 'string' and e.first_seen_at ~= '' then first = e.first_seen_at end
    times = (tonumber(e.times_dead_lettered) or 1) + 1
  end
end
local body = string.sub(ARGV[1], 1, -2) .. ', "first_seen_at": ' .. cjson.encode(first)
  .. ', "times_dead_lettered": ' .. string.format('%d', times) .. '}'
redis.call('SET', KEYS[1], body, 'EX', ARGV[3])
redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[5])
local cutoff = tonumber(ARGV[4]) - tonumber(ARGV[3])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff, 'LIMIT', 0, tonumber(ARGV[7]))) do
  if redis.call('EXISTS', ARGV[6] .. id) == 0 then redis.call('ZREM', KEYS[2], id) end
end
return {times, first}
"""

#: KEYS: index ZSET. ARGV: entry key prefix, then ids whose entry looked gone. Unindexes those still gone.
CLEAN_LUA = """
local removed = 0
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then removed = removed + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return removed
"""

#: KEYS: entry STRING, settled STRING, then every queue's index ZSET. ARGV: entry id, settled JSON, its TTL.
#: Returns {1, entry} if this call removed the entry, else {0, settled record or ''}.
PURGE_LUA = """
local raw = redis.call('GET', KEYS[1])
if not raw then return {0, redis.call('GET', KEYS[2]) or ''} end
redis.call('DEL', KEYS[1])
for i = 3, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return {1, raw}
"""

#: KEYS: 1 entry STRING, 2 settled STRING, 3 the new job's record HASH, 4 the list to push to, 5 its queue's
#: doorbell STREAM, 6 the original job's result, 7..6+q every queue's index ZSET (q = ARGV[10]), then ARGV[11]
#: unacked HASHes, ARGV[12] schedule HASHes and ARGV[13] waiting lists where a delivery of the original may be.
#: ARGV: 1 entry id, 2 its first_seen_at as read, 3 original job id, 4 message, 5 settled JSON, 6 its TTL,
#: 7 job record TTL, 8 doorbell MAXLEN, 9 messages to check per list, 10..13 key counts, 14 record field count,
#: then the record's fields and values. Returns {status, detail}.
REPLAY_LUA = """
local raw = redis.call('GET', KEYS[1])
if not raw then return {'gone', redis.call('GET', KEYS[2]) or ''} end
local ok, entry = pcall(cjson.decode, raw)
if not ok or type(entry) ~= 'table' or entry.first_seen_at ~= ARGV[2] then return {'changed', ''} end
local job = ARGV[3]
local needle = '"' .. job .. '"'
local function carries(item, wrapped)
  if not string.find(item, needle, 1, true) then return false end
  local decoded, msg = pcall(cjson.decode, item)
  if not decoded or type(msg) ~= 'table' then return false end
  if wrapped then msg = msg[1] end
  return type(msg) == 'table' and type(msg.headers) == 'table' and msg.headers.id == job
end
local q, nu, ns, nl = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local k = 6 + q
for i = k + 1, k + nu do
  for _, item in ipairs(redis.call('HVALS', KEYS[i])) do
    if carries(item, true) then return {'in_flight', 'a worker is running it (' .. KEYS[i] .. ')'} end
  end
end
k = k + nu
for i = k + 1, k + ns do
  if redis.call('HEXISTS', KEYS[i], job) == 1 then return {'in_flight', 'it is scheduled to run again'} end
end
k = k + ns
for i = k + 1, k + nl do
  for _, item in ipairs(redis.call('LRANGE', KEYS[i], -tonumber(ARGV[9]), -1)) do
    if carries(item, false) then return {'in_flight', 'a redelivered copy waits in list ' .. KEYS[i]} end
  end
end
local result = redis.call('GET', KEYS[6])
if result then
  local decoded, meta = pcall(cjson.decode, result)
  if decoded and type(meta) == 'table' and meta.status == 'SUCCESS' then return {'succeeded', ''} end
end
redis.call('DEL', KEYS[1])
for i = 7, 6 + q do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
local fields = {}
for i = 15, 14 + tonumber(ARGV[14]) do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('EXPIRE', KEYS[3], ARGV[7])
redis.call('LPUSH', KEYS[4], ARGV[4])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[8], '*', 'n', '1')
return {'replayed', ''}
"""


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


@dataclass(frozen=True)
class Settled:
    """What became of an entry that left the DLQ: the answer to a retried or concurrent request for it."""

    action: str  # REPLAYED or PURGED
    entry_id: str
    job_id: str | None
    new_job_id: str | None
    at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Settled | None:
        try:
            data = json.loads(raw)
            return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Outcome:
    """The result of a replay or purge claim: a status above, the settled record when there is one, and why."""

    status: str
    entry_id: str
    settled: Settled | None = None
    detail: str = ""


@dataclass(frozen=True)
class ReplayMessage:
    """A replay's kombu envelope, ready to push: the list it goes to, the bytes Celery's producer would write."""

    list_key: str
    payload: str
    queue: str
    task: str
    #: What ``after_task_publish`` receivers expect (the producer's sent metric), sent once the push happened.
    published: dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def replay_job_id(entry: DeadLetter) -> str:
    """The job id of this entry's replay: the same for every attempt, new when the job is dead-lettered anew."""
    return str(uuid.uuid5(REPLAY_NAMESPACE, f"{entry.id}\n{entry.first_seen_at}"))


def replay_message(app: Celery, entry: DeadLetter, job_id: str) -> ReplayMessage:
    """The message ``app.send_task`` would publish for this replay, built by Celery and kombu but not sent.

    Celery builds the task message (protocol 2 headers, body); kombu's channel prepares and stamps the envelope
    (body encoding, delivery tag, delivery info) and names the list, exactly as its ``basic_publish`` does before
    its LPUSH. The push itself is the claim script's, so claim and publish are one step.
    """
    from celery import signals
    from kombu import serialization
    from kombu.utils.json import dumps

    from taskfleet_core.tasks.contracts import CONTRACTS

    contract = CONTRACTS[entry.task or ""]
    spec = QUEUES[contract.queue]
    args = entry.args if isinstance(entry.args, list) else []
    kwargs = entry.kwargs if isinstance(entry.kwargs, dict) else {}
    headers, properties, body, _ = app.amqp.create_task_message(job_id, contract.name, args, kwargs)
    headers[REPLAY_OF_HEADER] = entry.job_id or entry.id
    route = {"exchange": spec.exchange, "routing_key": spec.routing_key}
    signals.before_task_publish.send(  # the producer's stamps (publish time for the queue-wait metric)
        sender=contract.name,
        body=body,
        declare=[spec.kombu_queue()],
        headers=headers,
        properties=properties,
        retry_policy={},
        **route,
    )
    content_type, content_encoding, data = serialization.dumps(body, serializer=app.conf.task_serializer)
    properties["delivery_mode"] = 2  # persistent, as Celery's default delivery mode
    with app.producer_or_acquire() as producer:  # a pooled connection's channel
        channel: Any = producer.channel
        message = channel.prepare_message(data, None, content_type, content_encoding, headers, properties)
        channel._inplace_augment_message(message, spec.exchange, spec.routing_key)
        list_key = channel._q_for_pri(spec.name, channel._get_message_priority(message, reverse=False))
    return ReplayMessage(
        list_key=str(list_key),
        payload=dumps(message),
        queue=spec.name,
        task=contract.name,
        published={"sender": contract.name, "body": body, "headers": headers, **route},
    )


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
        """Store an entry; the same id again counts up ``times_dead_lettered`` and keeps the first time.

        One script (``ADD_LUA``): concurrent adds of one id each count, and the index always names the entry.
        """
        if entry.queue not in QUEUES:
            entry.queue = "default"
        entry.dead_lettered_at = entry.dead_lettered_at or _now()
        data = {k: v for k, v in asdict(entry).items() if k not in {"first_seen_at", "times_dead_lettered"}}
        times, first = cast(
            "list[Any]",
            self.client.eval(
                ADD_LUA,
                2,
                DLQ_ENTRY_KEY.format(entry_id=entry.id),
                DLQ_INDEX_KEY.format(queue=entry.queue),
                json.dumps(data, default=str),
                entry.first_seen_at or entry.dead_lettered_at,
                self.retention,
                time.time(),
                entry.id,
                DLQ_ENTRY_KEY.format(entry_id=""),
                TRIM_BATCH,
            ),
        )
        entry.times_dead_lettered, entry.first_seen_at = int(times), _text(first)
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
                gone = [i for i, raw in zip(chunk, raws, strict=True) if raw is None]
                if gone:  # expired; unindexed only if still gone when the script runs (re-added meanwhile)
                    self.client.eval(CLEAN_LUA, 1, index, DLQ_ENTRY_KEY.format(entry_id=""), *gone)
                for raw in raws:
                    if raw is None:
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

    # --- settling: replay and purge claim their entry ---------------------------------------------
    def settled(self, entry_id: str) -> Settled | None:
        raw = self.client.get(DLQ_SETTLED_KEY.format(entry_id=entry_id))
        return None if raw is None else Settled.from_json(raw)

    def _indexes(self) -> list[str]:
        return [DLQ_INDEX_KEY.format(queue=name) for name in QUEUES]

    def _gone(self, entry_id: str, raw: Any = None) -> Outcome:
        """The entry is not there: tell what became of it (settled record), or that it is unknown."""
        settled = Settled.from_json(raw) if raw else self.settled(entry_id)
        if settled is None:
            return Outcome(MISSING, entry_id, detail=f"no dead letter {entry_id!r}")
        if settled.action == REPLAYED:
            detail = f"dead letter {entry_id} was replayed as job {settled.new_job_id} at {settled.at}"
            return Outcome(ALREADY_REPLAYED, entry_id, settled, detail)
        return Outcome(ALREADY_PURGED, entry_id, settled, f"dead letter {entry_id} was purged at {settled.at}")

    def purge_one(self, entry_id: str) -> Outcome:
        """Remove one entry, if this call is the one that removes it (``PURGED``); else what became of it."""
        settled = Settled(PURGED, entry_id, None, None, _now())
        ids = [DLQ_ENTRY_KEY.format(entry_id=entry_id), DLQ_SETTLED_KEY.format(entry_id=entry_id), *self._indexes()]
        removed, raw = cast(
            "list[Any]", self.client.eval(PURGE_LUA, len(ids), *ids, entry_id, settled.to_json(), SETTLED_SECONDS)
        )
        if not int(removed):
            return self._gone(entry_id, raw)
        entry = DeadLetter.from_json(raw)
        return Outcome(PURGED, entry_id, Settled(PURGED, entry_id, entry.job_id, None, settled.at))

    def remove(self, entry: DeadLetter) -> bool:
        """True if this call removed the entry (a concurrent replay or purge may have taken it first)."""
        return self.purge_one(entry.id).status == PURGED

    def purge(self, queue: str | None = None, task: str | None = None, reason: str | None = None) -> int:
        """Purge every matching entry; counts only those this call removed."""
        return sum(self.remove(entry) for entry in list(self.iter(queue, task, reason)))

    def replay(self, entry_id: str, app: Celery, *, record_ttl: int) -> Outcome:
        """Replay one entry as a new job (id ``replay_job_id``), claim and publish in one script (``REPLAY_LUA``).

        ``REPLAYED`` when this call did it; ``ALREADY_REPLAYED`` (same new job id) or ``ALREADY_PURGED`` when an
        earlier or concurrent call settled it; ``IN_FLIGHT`` / ``SUCCEEDED`` when the original job may still run
        or has run; ``UNREPLAYABLE``; ``MISSING``. ``record_ttl`` is the new job record's TTL (the API's).
        """
        for _ in range(3):  # the entry can be re-added between the read and the claim: read it again
            entry = self.get(entry_id)
            if entry is None:
                return self._gone(entry_id)
            if not entry.replayable:
                return Outcome(
                    UNREPLAYABLE, entry_id, detail=f"dead letter {entry_id} ({entry.reason}) cannot be replayed"
                )
            new_job_id = replay_job_id(entry)
            message = replay_message(app, entry, new_job_id)
            settled = Settled(REPLAYED, entry_id, entry.job_id, new_job_id, _now())
            status, detail = self._claim_and_push(entry, message, settled, app, record_ttl)
            if status == "replayed":
                from celery import signals

                signals.after_task_publish.send(**message.published)
                return Outcome(REPLAYED, entry_id, settled)
            if status == "gone":
                return self._gone(entry_id, detail)
            original = entry.job_id or entry.id
            if status == "in_flight":
                return Outcome(
                    IN_FLIGHT,
                    entry_id,
                    detail=f"job {original} still has a delivery in flight ({detail}); a replay now could run it "
                    f"twice: wait until it has finished (GET /api/v1/jobs/{original}), then replay if it failed again",
                )
            if status == "succeeded":
                return Outcome(
                    SUCCEEDED,
                    entry_id,
                    detail=f"job {original} succeeded after it was dead-lettered (a redelivery ran it): nothing to "
                    "replay; purge the entry",
                )
        return Outcome(IN_FLIGHT, entry_id, detail=f"dead letter {entry_id} keeps changing (dead-lettered again?)")

    def _claim_and_push(
        self, entry: DeadLetter, message: ReplayMessage, settled: Settled, app: Celery, record_ttl: int
    ) -> tuple[str, str]:
        from kombu.utils.encoding import bytes_to_str

        original = entry.job_id or entry.id
        queues = [QUEUES[name] for name in dict.fromkeys([message.queue, entry.queue]) if name in QUEUES]
        unacked = [spec.unacked_key for spec in queues]
        scheduled = [SCHEDULED_MESSAGES_KEY.format(queue=spec.name) for spec in queues]
        lists = [name for spec in queues for name in spec.waiting_lists()]
        record = {"task": message.task, "queue": message.queue, "submitted_at": settled.at, "replay_of": original}
        fields = [item for pair in record.items() for item in pair]
        names = [
            DLQ_ENTRY_KEY.format(entry_id=entry.id),
            DLQ_SETTLED_KEY.format(entry_id=entry.id),
            JOB_KEY.format(job_id=settled.new_job_id),
            message.list_key,
            fetch.doorbell_key(message.queue),
            bytes_to_str(cast(Any, app.backend).get_key_for_task(original)),
            *self._indexes(),
            *unacked,
            *scheduled,
            *lists,
        ]
        status, detail = cast(
            "list[Any]",
            self.client.eval(
                REPLAY_LUA,
                len(names),
                *names,
                entry.id,
                entry.first_seen_at,
                original,
                message.payload,
                settled.to_json(),
                SETTLED_SECONDS,
                record_ttl,
                fetch.DOORBELL_MAXLEN,
                RESTORED_SCAN,
                len(QUEUES),
                len(unacked),
                len(scheduled),
                len(lists),
                len(fields),
                *fields,
            ),
        )
        return _text(status), _text(detail)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def dead_letter_queue() -> DeadLetterQueue:
    from taskfleet_core.broker.client import client

    return DeadLetterQueue(client())
