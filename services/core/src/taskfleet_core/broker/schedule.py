"""Delayed work lives in Valkey, never in a worker: the per-queue schedule and its promoter.

A message whose ``eta`` header lies in the future (a countdown, an ETA, a retry's backoff, a rate-limit
deferral) is not pushed onto its queue's list, where a worker would take it and hold it in memory (kombu's
``unacked`` hash) until due -- a SIGKILLed worker stranded such jobs until the visibility timeout (an hour).
Instead the fleet's transport (``broker/transport.py``, ``Channel._put``) files it here:

* ``taskfleet:scheduled:<queue>`` (ZSET): member = the Celery task id (else kombu's delivery tag),
  score = due time in epoch seconds;
* ``taskfleet:scheduled:<queue>:messages`` (HASH): member -> the target list key, a newline, and the kombu
  envelope exactly as kombu would have LPUSHed it (priority sub-list included).

Both are written by one Lua script, so an entry is never half there. ``promote_due`` (one Lua script, run
by every worker's timer and by Beat's thread through ``housekeeping``) moves entries whose score is <= the
server's own clock (``TIME``, read inside the script) onto their list and removes them from the schedule, in
bounded batches. A script runs atomically: two promoters racing cannot both take an entry, and a promoter
that dies between two calls leaves every entry either promoted or still scheduled -- never lost, never
doubled. A worker then receives a message whose ``eta`` has passed and runs it at once.

Scheduling the same task id twice keeps one entry (the later publish wins): a job is scheduled at most once.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, cast

import redis

from taskfleet_core.broker import fetch, keys
from taskfleet_core.reliability import housekeeping
from taskfleet_core.tasks.queues import QUEUES

log = logging.getLogger("taskfleet.schedule")

#: An ``eta`` at most this many seconds ahead goes straight to the list (a worker holds it that briefly).
EPSILON_SECONDS = 0.25
#: Entries one promoter call moves at most (one script call: it blocks Valkey while it runs).
PROMOTE_BATCH = 200
#: Calls per queue and housekeeping round at most, so one round never holds a worker's timer for long.
PROMOTE_MAX_ROUNDS = 10
#: How often every housekeeping process promotes due work (so a job runs at most about this late).
PROMOTE_INTERVAL_SECONDS = 1.0

#: KEYS: schedule ZSET, messages HASH. ARGV: member, score, "<list key>\n<payload>".
SCHEDULE_LUA = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

#: KEYS: schedule ZSET, messages HASH, the queue's doorbell STREAM (broker/fetch.py: rung so idle workers fetch).
#: ARGV: batch size, doorbell MAXLEN. Returns the number of messages pushed.
PROMOTE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local pushed = 0
for _, member in ipairs(due) do
  local entry = redis.call('HGET', KEYS[2], member)
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  if entry then
    local cut = string.find(entry, '\\n', 1, true)
    if cut then
      redis.call('LPUSH', string.sub(entry, 1, cut - 1), string.sub(entry, cut + 1))
      pushed = pushed + 1
    end
  end
end
if pushed > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'n', pushed)
end
return pushed
"""

#: KEYS: schedule ZSET, messages HASH. ARGV: member. Removes one entry (a revoked job); 1 if it was there.
CANCEL_LUA = """
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""


def schedule_key(queue: str) -> str:
    return keys.SCHEDULED_KEY.format(queue=queue)


def messages_key(queue: str) -> str:
    return keys.SCHEDULED_MESSAGES_KEY.format(queue=queue)


def eta_seconds(message: dict[str, Any]) -> float | None:
    """The ``eta`` header of a kombu envelope as epoch seconds (a naive ETA is UTC, as the app's), or None."""
    headers = message.get("headers")
    raw = headers.get("eta") if isinstance(headers, dict) else None
    if not raw:
        return None
    try:
        eta = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    if eta.tzinfo is None:
        eta = eta.replace(tzinfo=UTC)
    return eta.timestamp()


def member_of(message: dict[str, Any]) -> str:
    """The task id (Celery's ``id`` header), else kombu's delivery tag."""
    headers = message.get("headers")
    task_id = headers.get("id") if isinstance(headers, dict) else None
    if task_id:
        return str(task_id)
    return str(message["properties"]["delivery_tag"])


def entry_value(list_key: str, payload: str) -> str:
    return f"{list_key}\n{payload}"


def is_delayed(due: float | None, now: float | None = None) -> bool:
    return due is not None and due - (time.time() if now is None else now) > EPSILON_SECONDS


def schedule_args(queue: str, message: dict[str, Any], list_key: str, payload: str, due: float) -> list[Any]:
    """``EVAL`` arguments after the script: numkeys, keys, argv."""
    return [2, schedule_key(queue), messages_key(queue), member_of(message), repr(due), entry_value(list_key, payload)]


def promote_queue(client: redis.Redis, queue: str, batch: int = PROMOTE_BATCH, rounds: int = PROMOTE_MAX_ROUNDS) -> int:
    """Move due entries of one queue onto its lists; returns how many were pushed."""
    total = 0
    for _ in range(rounds):
        keys_ = (schedule_key(queue), messages_key(queue), fetch.doorbell_key(queue))
        moved = int(cast(int, client.eval(PROMOTE_LUA, 3, *keys_, batch, fetch.DOORBELL_MAXLEN)))
        total += moved
        if moved < batch:
            break
    return total


@housekeeping.every(PROMOTE_INTERVAL_SECONDS, "promote-scheduled")
def promote_due(client: redis.Redis) -> int:
    """Housekeeping: every queue's due delayed work onto its list (safe in any number of processes at once)."""
    total = 0
    for queue in QUEUES:
        moved = promote_queue(client, queue)
        if moved:
            log.info("promoted %d due message(s) onto queue %s", moved, queue)
        total += moved
    return total


def due_at(client: redis.Redis, queue: str, job_id: str) -> datetime | None:
    """When a job waiting in the schedule is due (UTC), or None when it is not in the schedule."""
    score = client.zscore(schedule_key(queue), job_id)
    return None if score is None else datetime.fromtimestamp(float(score), UTC)


def cancel(client: redis.Redis, queue: str, job_id: str) -> bool:
    """Take a job out of the schedule (it was revoked); True if it was there."""
    return bool(client.eval(CANCEL_LUA, 2, schedule_key(queue), messages_key(queue), job_id))


def scheduled_payloads(client: redis.Redis, queue: str) -> dict[str, dict[str, Any]]:
    """Every scheduled envelope of a queue by member (tests, debugging)."""
    raw = cast(dict[str, str], client.hgetall(messages_key(queue)))
    return {member: json.loads(value.split("\n", 1)[1]) for member, value in raw.items()}
