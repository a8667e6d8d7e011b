"""kombu's Redis transport, with the fleet's fetch, guards, delayed work and attribution.

First, the fetch (``broker/fetch.py``): kombu's BRPOP is replaced by one Lua script that pops a message and
records it in ``unacked`` and this worker's in-flight set atomically, so no kill can lose a popped message; an
idle worker waits on the queue's doorbell stream, which every publish rings. A list item that is not a kombu
envelope (a stray ``LPUSH``, a truncated write, another tool's format) would raise in the event loop and kill
the worker ("Unrecoverable error"); it goes to the DLQ as ``malformed`` and the consumer carries on.

A second guard, found by the redis-restart chaos scenario: when the broker drops while a task
is unacked, kombu's close path restores that message and needs a new connection pool, but the
transport has already let go of its connection (``connection.client`` is None). The resulting
AttributeError escaped as "Unrecoverable error" and the worker exited. Raising kombu's
connection error instead lets Celery's reconnect loop carry on; the message stays in the
``unacked`` hash and the visibility-timeout sweep returns it.

Third, delayed work: a message whose ``eta`` lies in the future is filed in the queue's schedule in Valkey
(``broker/schedule.py``) instead of its list, so no worker ever holds it in memory until due.

Fourth, attribution (``QoS``): every delivery is also recorded in ``taskfleet:inflight:<worker>`` in the same MULTI
as kombu's unacked entry, and removed with it, so the reaper (reliability/reaper.py) can return exactly a
lost worker's messages (broker/inflight.py). A channel closed by a broker loss still reaches Valkey through a
fresh client of the same broker: a task that finishes after Celery reconnected acks (instead of sitting in
``unacked`` for the visibility timeout), and a message its worker no longer runs is restored through a fresh
channel (the closed one has lost its exchange table, and kombu would drop the message while "restoring" it).

Fifth, routing (``Channel._lookup``): a publish to a fleet queue goes straight to its list, never through kombu's
binding SET, whose loss made kombu drop messages silently (broker/bindings.py).

Sixth, writes that belong with a publish (``alongside_publish``): the API's job record and listing index go in
the publish's own pipeline, so submitting a job is one round trip to Valkey, not three.

Every process uses it (``broker_transport`` in ``tasks/app.py``): workers, Beat, the API, the exporter.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from queue import Empty
from typing import Any
from urllib.parse import quote

import redis
from kombu import Connection
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from taskfleet_core.broker import bindings, fetch, inflight, keys, schedule
from taskfleet_core.reliability import dlq
from taskfleet_core.settings import BrokerSettings, load
from taskfleet_core.tasks.queues import QUEUES

log = logging.getLogger("taskfleet.dlq")


def envelope(item: Any) -> dict[str, Any] | None:
    """The parsed kombu envelope of a list item, or None when it is not one (``properties.delivery_tag`` etc.)."""
    try:
        data = loads(bytes_to_str(item))
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    properties = data.get("properties")
    ok = (
        isinstance(properties, dict)
        and "delivery_tag" in properties
        and isinstance(properties.get("delivery_info"), dict)
        and isinstance(data.get("headers", {}), dict | None)
    )
    return data if ok else None


def dead_letter_raw(queue: str, item: Any) -> None:
    """Record an item that never became a message. Never raises: the consumer must go on."""
    try:
        raw = bytes_to_str(item) if isinstance(item, bytes | str) else repr(item)
    except UnicodeDecodeError:
        raw = repr(item)
    try:
        entry = dlq.DeadLetter(
            id=uuid.uuid4().hex,
            queue=queue,
            reason=dlq.MALFORMED,
            task=None,
            job_id=None,
            raw_body=raw[: dlq.RAW_BODY_MAX],
            exception_type="NotAKombuEnvelope",
            exception_message="list item is not a JSON kombu message envelope",
        )
        dlq.dead_letter_queue().add(entry)
        log.error("dead-lettered a malformed list item %s from queue %s", entry.id, queue)
    except Exception:
        log.exception("could not dead-letter a malformed list item from queue %s; it is dropped", queue)


def running_delivery_tags() -> set[str]:
    """Delivery tags of the requests this worker runs or has handed to its pool (Celery's worker state).

    A channel closed by a broker loss must not hand these back: with
    ``worker_cancel_long_running_tasks_on_connection_loss=False`` they keep running and ack when done.
    """
    try:
        from celery.worker import state
    except ImportError:  # pragma: no cover - the transport is a worker's
        return set()
    tags: set[str] = set()
    requests = [*state.active_requests, *state.reserved_requests]
    for request in requests:
        handed_to_pool = request in state.active_requests or getattr(request, "_apply_result", None) is not None
        message = getattr(request, "message", None)
        if handed_to_pool and message is not None:
            tags.add(str(message.delivery_tag))
    return tags


@dataclass
class _Orphans:
    """Deliveries of a closed channel that nobody will run or ack: restored as soon as the broker answers."""

    url: str
    unacked_key: str
    unacked_index_key: str
    inflight_key: str
    tags: list[str]


_orphans: list[_Orphans] = []


def restore_tags(
    url: str,
    unacked_key: str,
    unacked_index_key: str,
    inflight_key: str,
    tags: Iterable[str],
    *,
    leftmost: bool = False,
) -> int:
    """Return messages from ``unacked`` to their queues with kombu's ``restore_by_tag`` on a fresh channel.

    Each tag is one WATCH transaction on the unacked hash (HGET, then ZREM + HDEL + SREM + push): when several
    processes restore the same tag at once, one EXEC wins and the others find the entry gone, so a message is
    pushed once or not at all, never twice. A tag no longer in ``unacked`` (acked meanwhile) is only cleared
    from the indices. Returns how many messages were pushed back.
    """
    options = {"unacked_key": unacked_key, "unacked_index_key": unacked_index_key}
    pushed = 0
    with Connection(url, transport=Transport, transport_options=options) as connection:
        channel: Any = connection.default_channel
        qos = channel.qos
        qos.inflight_key = inflight_key
        with channel.conn_or_acquire() as client:
            for tag in tags:
                pushed += 1 if client.hexists(unacked_key, tag) else 0
                qos.restore_by_tag(tag, client=client, leftmost=leftmost)
    return pushed


def restore_orphans() -> int:
    """Retry restoring the deliveries of channels closed while the broker was away; returns how many are left."""
    for orphans in list(_orphans):
        try:
            restore_tags(
                orphans.url, orphans.unacked_key, orphans.unacked_index_key, orphans.inflight_key, orphans.tags
            )
        except Exception as exc:  # the broker is still away: the next tick tries again
            log.debug("could not restore %d orphaned deliveries yet: %s", len(orphans.tags), exc)
            continue
        _orphans.remove(orphans)
        log.warning("restored %d deliveries of a channel closed by a broker loss", len(orphans.tags))
    return sum(len(o.tags) for o in _orphans)


class QoS(kombu_redis.QoS):
    """kombu's ack emulation, plus the per-worker in-flight set (broker/inflight.py) kept in the same MULTI."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The SET this QoS adds delivery tags to and removes them from (the reaper points it at a lost worker's).
        self.inflight_key = inflight.inflight_key()

    @functools.cached_property
    def _registration(self) -> str:
        return inflight.registration(self.unacked_key, self.unacked_index_key)

    def append(self, message: Any, delivery_tag: str) -> None:
        fetched: set[str] = getattr(self.channel, "fetched_tags", set())
        if str(delivery_tag) in fetched:  # the fetch script already wrote all of it, atomically with the pop
            fetched.discard(str(delivery_tag))
            virtual.QoS.append(self, message, delivery_tag)
            return
        delivery = message.delivery_info
        exchange, routing_key = delivery["exchange"], delivery["routing_key"]
        worker = inflight.worker_id()
        lost_ms = load(BrokerSettings).worker_lost_seconds * 1000
        with self.pipe_or_acquire() as pipe:
            # kombu's two writes, plus: the tag is this worker's, the worker is registered, and it has a
            # heartbeat (NX: only if its heartbeat step has not written one yet), all in one MULTI.
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()}).hset(
                self.unacked_key, delivery_tag, json.dumps([message._raw, exchange, routing_key])
            ).sadd(self.inflight_key, delivery_tag).hsetnx(keys.WORKERS_KEY, worker, self._registration).set(
                inflight.heartbeat_key(worker), f"{time.time():.3f}", px=lost_ms, nx=True
            ).execute()
            virtual.QoS.append(self, message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        pipe = super()._remove_from_indices(delivery_tag, pipe)  # type: ignore[misc]
        return pipe.srem(self.inflight_key, delivery_tag)

    def restore_by_tag(self, tag: str, client: Any = None, leftmost: bool = False) -> None:
        channel: Any = self.channel
        if channel.closed:
            # A closed channel lost its exchange table: kombu would remove the message from unacked and fail
            # to push it (logged, then dropped). A fresh channel does the same transaction properly.
            restore_tags(
                channel.broker_url,
                self.unacked_key,
                self.unacked_index_key,
                self.inflight_key,
                [tag],
                leftmost=leftmost,
            )
            return
        super().restore_by_tag(tag, client=client, leftmost=leftmost)

    def restore_unacked(self, client: Any = None) -> None:
        """At channel close: hand back what this worker will not run; keep what it runs (it acks when done).

        On a warm shutdown nothing runs any more, so everything goes back (kombu's behaviour). On a broker
        loss the running tasks go on; the rest is restored now, or, with the broker away, remembered and
        restored from the heartbeat timer once it answers (``restore_orphans``).
        """
        channel: Any = self.channel
        delivered: Any = self._delivered
        running = running_delivery_tags()
        left = [tag for tag in delivered if str(tag) not in running]
        delivered.clear()
        try:
            with channel.conn_or_acquire(client) as conn:
                # Fetched (attributed to this worker by the fetch script) but never read off the socket, e.g.
                # a fetch reply still pending at shutdown: this worker will not run those either.
                known = {str(tag) for tag in left} | running
                left += sorted(t for t in (bytes_to_str(m) for m in conn.smembers(self.inflight_key)) if t not in known)
                while left:
                    super().restore_by_tag(left[0], client=conn)
                    left.pop(0)
        except Exception as exc:
            _orphans.append(
                _Orphans(channel.broker_url, self.unacked_key, self.unacked_index_key, self.inflight_key, left)
            )
            log.warning("broker away while closing a channel (%s): %d deliveries restored later", exc, len(left))


def _redis_url(conninfo: Any) -> str:
    """A redis:// URL of a kombu connection (whose own URI names the transport class, not a scheme)."""
    scheme = "rediss" if conninfo.ssl else "redis"
    auth = ""
    if conninfo.password:
        auth = f"{quote(conninfo.userid or '', safe='')}:{quote(conninfo.password, safe='')}@"
    vhost = str(conninfo.virtual_host or "0").lstrip("/") or "0"
    return f"{scheme}://{auth}{conninfo.hostname or 'localhost'}:{conninfo.port or 6379}/{vhost}"


@functools.cache
def _fallback_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)


class Channel(kombu_redis.Channel):
    QoS = QoS

    def __init__(self, connection: Any, *args: Any, **kwargs: Any) -> None:
        #: The broker this channel talks to, kept for after close (``connection`` is then gone).
        self.broker_url: str = _redis_url(connection.client)
        self.fetched_tags = set()
        super().__init__(connection, *args, **kwargs)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """kombu's, except that a channel closed by a broker loss falls back to a fresh client of its broker.

        Celery acks a task that finishes after a reconnect on the message's old channel; kombu would need
        that channel's pool, which is gone (``_connparams`` then raises), and the message would stay in
        ``unacked`` until the visibility timeout.
        """
        if client:
            yield client
            return
        try:
            fresh = self._create_client()  # type: ignore[attr-defined]
        except (AttributeError, redis.exceptions.ConnectionError):
            if not self.closed and self.connection is not None:
                raise
            fresh = _fallback_client(self.broker_url)
        yield fresh

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # closing after the broker went away: no new pool can be made
            raise redis.exceptions.ConnectionError("broker connection already closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]
        return params

    # -- atomic fetch (broker/fetch.py): kombu's BRPOP replaced by the fetch script + a doorbell wait ----------

    #: Delivery tags the fetch script registered whose message kombu has not appended to its QoS yet.
    fetched_tags: set[str]
    #: The doorbell ids the last empty fetch saw (None: the next poll fetches, it does not wait).
    _doorbell_ids: list[str] | None = None

    def _fetch_keys(self, queues: list[str]) -> tuple[list[str], list[str]]:
        lists = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]  # type: ignore[attr-defined]
        qos: Any = self.qos
        worker = inflight.worker_id()
        bookkeeping = [
            qos.unacked_key,
            qos.unacked_index_key,
            qos.inflight_key,
            keys.WORKERS_KEY,
            inflight.heartbeat_key(worker),
        ]
        return lists, bookkeeping + [fetch.doorbell_key(queue) for queue in queues]

    def _brpop_start(self, timeout: float | None = None) -> None:
        """Send the fetch script, or, after an empty fetch, a blocking wait on the queues' doorbells."""
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))  # type: ignore[attr-defined]
        if not queues:
            return
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        if self._doorbell_ids is not None:
            doorbells = [fetch.doorbell_key(queue) for queue in queues]
            ids = self._doorbell_ids if len(self._doorbell_ids) == len(doorbells) else ["$"] * len(doorbells)
            block_ms = max(1, int((timeout or 1) * 1000))
            self.client.connection.send_command("XREAD", "COUNT", 1, "BLOCK", block_ms, "STREAMS", *doorbells, *ids)
            return
        lists, rest = self._fetch_keys(list(queues))
        qos: Any = self.qos
        registration = qos._registration
        lost_ms = load(BrokerSettings).worker_lost_seconds * 1000
        args = [len(lists), f"{time.time():.6f}", inflight.worker_id(), registration, lost_ms]
        self.client.connection.send_command("EVAL", fetch.FETCH_LUA, len(lists) + len(rest), *lists, *rest, *args)

    def _brpop_read(self, **options: Any) -> bool:
        """Read the fetch script's (or the doorbell wait's) reply; deliver a message as kombu's BRPOP read does."""
        waiting = self._doorbell_ids is not None
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "XREAD" if waiting else "EVAL", **options)
            except self.connection_errors:  # type: ignore[attr-defined]
                self.client.connection.disconnect()  # the next poll reconnects
                raise
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()  # type: ignore[attr-defined]
        if waiting:
            self._doorbell_ids = None  # rung or timed out: fetch next
            raise Empty()
        dest, *rest = [bytes_to_str(part) for part in reply]
        if not dest:  # every list empty: wait on the doorbells from the ids the script saw
            self._doorbell_ids = rest
            raise Empty()
        queue = dest.rsplit(self.sep, 1)[0]
        message = envelope(rest[0])  # parsed once, here
        if message is None:
            dead_letter_raw(queue, rest[0])  # popped but never registered: the DLQ has it now
            raise Empty()
        self.fetched_tags.add(str(message["properties"]["delivery_tag"]))
        self._queue_cycle.rotate(queue)  # type: ignore[attr-defined]
        self.connection._deliver(message, queue)
        return True

    def _lookup(self, exchange: str, routing_key: str, default: str | None = None) -> list[str]:
        """A fleet queue's publish (and restore) goes to its list without reading kombu's binding SET.

        kombu would ``SMEMBERS _kombu.binding.<exchange>`` and drop the message silently when Valkey lost that
        SET (broker/bindings.py). A fleet exchange that matches no queue raises instead.
        """
        queue = bindings.fleet_route(exchange, routing_key)
        if queue is not None:
            return [queue]
        found: list[str] = list(super()._lookup(exchange, routing_key, default))
        if not found and (error := bindings.unroutable(exchange, routing_key)) is not None:
            raise error
        return found

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        """A message due later goes into the queue's schedule (one script: ZADD + HSET), not onto its list."""
        due = schedule.eta_seconds(message)
        expiring = self._expires  # type: ignore[attr-defined]
        if queue not in QUEUES or expiring:  # not a fleet queue (or expiring queues): kombu's own push
            super()._put(queue, message, **kwargs)
            return
        if due is None or not schedule.is_delayed(due):
            self._push(queue, message, kwargs.pop("_publish_batch", None))
            return
        priority = self._get_message_priority(message, reverse=False)
        list_key = self._q_for_pri(queue, priority)  # type: ignore[attr-defined]  # the list kombu would LPUSH to
        args = schedule.schedule_args(queue, message, list_key, dumps(message), due)
        publish_batch = kwargs.pop("_publish_batch", None)
        if publish_batch is not None:  # kombu's producer-scoped batch: buffer the same script in its pipeline
            publish_batch.add("eval", schedule.SCHEDULE_LUA, *args)
            return
        with self.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False).eval(schedule.SCHEDULE_LUA, *args)
            extra = _with_alongside(pipe)
            pipe.execute()
            _sent(extra)

    def _push(self, queue: str, message: dict[str, Any], publish_batch: Any) -> None:
        """kombu's LPUSH, and a ring of the queue's doorbell in the same round trip (wakes idle fetchers)."""
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))  # type: ignore[attr-defined]
        ring = (fetch.doorbell_key(queue), {"n": "1"}, "*", fetch.DOORBELL_MAXLEN, True)
        if publish_batch is not None:  # kombu's producer-scoped batch: both commands in its pipeline
            publish_batch.add("lpush", key, dumps(message))
            publish_batch.add("xadd", *ring)
            return
        with self.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False).lpush(key, dumps(message)).xadd(*ring)
            extra = _with_alongside(pipe)
            pipe.execute()
            _sent(extra)


#: Commands to send in the same pipeline as this context's next publish to a fleet queue (``alongside_publish``).
_ALONGSIDE: ContextVar[list[tuple[Any, ...]] | None] = ContextVar("taskfleet_alongside_publish", default=None)


@contextmanager
def alongside_publish(*commands: tuple[Any, ...]) -> Iterator[list[tuple[Any, ...]]]:
    """Send ``commands`` (Valkey commands as tuples) in the pipeline of the next publish made in this block.

    The list yielded holds what was *not* sent that way (a publish to a non-fleet queue takes kombu's own path,
    a publish inside kombu's producer batch has its own pipeline): the caller sends those itself, so the
    commands run exactly when the publish did, at the latest right after it. A publish that failed leaves them
    in the list; Celery's publish retry sends them with the message.
    """
    pending = list(commands)
    token = _ALONGSIDE.set(pending)
    try:
        yield pending
    finally:
        _ALONGSIDE.reset(token)


def _with_alongside(pipe: Any) -> list[tuple[Any, ...]]:
    """Queue this context's alongside commands into ``pipe``; returns them, to clear once the pipe has run."""
    extra = list(_ALONGSIDE.get() or ())
    for command in extra:
        pipe.execute_command(*command)
    return extra


def _sent(extra: list[tuple[Any, ...]]) -> None:
    pending = _ALONGSIDE.get()
    if pending is not None and extra:
        del pending[: len(extra)]


class Transport(kombu_redis.Transport):
    Channel = Channel
