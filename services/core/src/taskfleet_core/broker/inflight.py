"""Who holds which in-flight message: the worker process's id, its Valkey heartbeat and the worker registry.

A delivery (acks_late) sits in kombu's ``unacked`` hash until the task acks. kombu only knows *when* it was
delivered, so a SIGKILLed worker's messages come back after the visibility timeout (an hour). The fleet's QoS
(broker/transport.py) also records each delivery tag in ``taskfleet:inflight:<worker>`` in the same MULTI;
the worker refreshes ``taskfleet:worker:<worker>`` (TTL ``WORKER_LOST_SECONDS``) from its event-loop timer;
the reaper (reliability/reaper.py) returns exactly the in-flight messages of workers whose heartbeat expired.

The id is ``host:pid:token`` of the consuming main process. The random token keeps a restarted container
(same pod name, PID 1 again) from inheriting the in-flight set of the process it replaces.

No Celery or kombu here: the transport and the heartbeat step both import it.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any

import redis

from taskfleet_core.broker import keys

_ids: dict[int, str] = {}
_consumer: str | None = None


def worker_id() -> str:
    """This process's worker id (a forked child gets its own)."""
    pid = os.getpid()
    if pid not in _ids:
        _ids[pid] = f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}"
    return _ids[pid]


def mark_consumer() -> str:
    """Called in a worker's main process before it forks its pool: its children then know whose they are."""
    global _consumer
    _consumer = worker_id()
    return _consumer


def consumer_id() -> str | None:
    """The worker whose heartbeat vouches for this process (its main process, in a pool child too); None
    outside a worker (API, tests, eager mode): nothing then tells when such a process is lost."""
    return _consumer


def inflight_key(worker: str | None = None) -> str:
    return keys.INFLIGHT_KEY.format(worker=worker or worker_id())


def heartbeat_key(worker: str | None = None) -> str:
    return keys.WORKER_HEARTBEAT_KEY.format(worker=worker or worker_id())


def registration(unacked_key: str, unacked_index_key: str, **extra: Any) -> str:
    """The registry entry of this process: where its in-flight messages are kept, and who it is."""
    return json.dumps(
        {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "unacked_key": unacked_key,
            "unacked_index_key": unacked_index_key,
            **extra,
        },
        sort_keys=True,
    )


def beat(client: redis.Redis, ttl: float, entry: str, worker: str | None = None) -> None:
    """Refresh this worker's heartbeat (TTL ``ttl``) and its registry entry, in one round trip."""
    worker = worker or worker_id()
    ms = max(1, int(ttl * 1000))
    pipe = client.pipeline()
    pipe.set(heartbeat_key(worker), f"{time.time():.3f}", px=ms)
    pipe.hset(keys.WORKERS_KEY, worker, entry)
    pipe.execute()


def forget(client: redis.Redis, worker: str | None = None) -> bool:
    """Remove a worker from the registry if it holds nothing in flight (clean shutdown). True if removed."""
    worker = worker or worker_id()
    with client.pipeline() as pipe:
        try:
            pipe.watch(inflight_key(worker))  # type: ignore[no-untyped-call]
            if pipe.scard(inflight_key(worker)):
                return False
            pipe.multi()
            pipe.delete(heartbeat_key(worker))
            pipe.hdel(keys.WORKERS_KEY, worker)
            pipe.execute()
            return True
        except redis.WatchError:
            return False


def registered(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Every registered worker id with its entry (bad entries read as ``{}``)."""
    out: dict[str, dict[str, Any]] = {}
    for worker, raw in client.hgetall(keys.WORKERS_KEY).items():
        name = worker.decode() if isinstance(worker, bytes) else str(worker)
        try:
            entry = json.loads(raw)
        except (TypeError, ValueError):
            entry = {}
        out[name] = entry if isinstance(entry, dict) else {}
    return out
