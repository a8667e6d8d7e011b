"""kombu's Redis transport, with one guard: a list item that is not a kombu envelope is dead-lettered.

kombu pops an item with BRPOP and parses it as JSON before Celery sees it. Anything else in a
queue's list (a stray ``LPUSH``, a truncated write, another tool's format) raises in the event
loop: the worker dies with "Unrecoverable error" and the item, already popped, is gone. Here the
BRPOP reply is checked first; an item that is not a JSON object with kombu's ``properties`` goes
to the DLQ as ``malformed`` and the consumer carries on as if the list had been empty.

A second guard, found by the redis-restart chaos scenario: when the broker drops while a task
is unacked, kombu's close path restores that message and needs a new connection pool, but the
transport has already let go of its connection (``connection.client`` is None). The resulting
AttributeError escaped as "Unrecoverable error" and the worker exited. Raising kombu's
connection error instead lets Celery's reconnect loop carry on; the message stays in the
``unacked`` hash and the visibility-timeout sweep returns it.

Third, delayed work: a message whose ``eta`` lies in the future is filed in the queue's schedule in Valkey
(``broker/schedule.py``) instead of its list, so no worker ever holds it in memory until due.

Every process uses it (``broker_transport`` in ``tasks/app.py``): workers, Beat, the API, the exporter.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps

from taskfleet_core.broker import schedule
from taskfleet_core.reliability import dlq
from taskfleet_core.tasks.queues import QUEUES

log = logging.getLogger("taskfleet.dlq")


def is_envelope(item: Any) -> bool:
    """The shape kombu's Redis channel needs to build a message (``properties.delivery_tag`` etc.)."""
    try:
        data = json.loads(bytes_to_str(item))
    except (TypeError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    properties = data.get("properties")
    return (
        isinstance(properties, dict)
        and "delivery_tag" in properties
        and isinstance(properties.get("delivery_info"), dict)
        and isinstance(data.get("headers", {}), dict | None)
    )


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


@functools.cache
def _guarded_client(base: type, sep: str) -> type:
    class GuardedClient(base):  # type: ignore[misc]
        def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
            reply = super().parse_response(connection, command_name, **options)
            if command_name == "BRPOP" and reply:
                dest, item = reply
                if not is_envelope(item):
                    dead_letter_raw(bytes_to_str(dest).rsplit(sep, 1)[0], item)
                    return None  # kombu treats it as an empty poll and issues the next BRPOP
            return reply

    return GuardedClient


class Channel(kombu_redis.Channel):
    def _get_client(self) -> type:
        # kombu's stubs (celery-types) leave out the transport's private hooks overridden here.
        return _guarded_client(super()._get_client(), self.sep)  # type: ignore[misc]

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # closing after the broker went away: no new pool can be made
            raise redis.exceptions.ConnectionError("broker connection already closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]
        return params

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        """A message due later goes into the queue's schedule (one script: ZADD + HSET), not onto its list."""
        due = schedule.eta_seconds(message)
        if due is None or queue not in QUEUES or not schedule.is_delayed(due):
            super()._put(queue, message, **kwargs)
            return
        priority = self._get_message_priority(message, reverse=False)
        list_key = self._q_for_pri(queue, priority)  # type: ignore[attr-defined]  # the list kombu would LPUSH to
        args = schedule.schedule_args(queue, message, list_key, dumps(message), due)
        publish_batch = kwargs.pop("_publish_batch", None)
        if publish_batch is not None:  # kombu's producer-scoped batch: buffer the same script in its pipeline
            publish_batch.add("eval", schedule.SCHEDULE_LUA, *args)
            return
        with self.conn_or_acquire() as client:
            client.eval(schedule.SCHEDULE_LUA, *args)


class Transport(kombu_redis.Transport):
    Channel = Channel
