"""The reaper and the fleet's QoS against a real valkey-server, without worker processes.

Deliveries are taken with kombu's ``basic_get`` (the same ``QoS.append`` a worker's consumer calls), so every
message sits in the queue's ``unacked`` hash and in this process's in-flight set, as a worker's would.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from taskfleet_core.broker import inflight, keys
from taskfleet_core.broker import transport as fleet_transport
from taskfleet_core.reliability import reaper

QUEUE = "reaper-race"
UNACKED, INDEX = f"unacked:{QUEUE}", f"unacked_index:{QUEUE}"
OPTIONS = {"unacked_key": UNACKED, "unacked_index_key": INDEX}


@pytest.fixture
def valkey(redis_server: Any) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.delete(QUEUE, UNACKED, INDEX, keys.WORKERS_KEY, inflight.inflight_key(), inflight.heartbeat_key())
    yield client
    client.delete(QUEUE, UNACKED, INDEX, keys.WORKERS_KEY, inflight.inflight_key(), inflight.heartbeat_key())
    client.close()


def deliver(url: str, count: int) -> tuple[Connection, Any, list[Any]]:
    """Publish ``count`` messages and take them unacked; returns the open connection, channel and messages."""
    conn = Connection(url, transport=fleet_transport.Transport, transport_options=OPTIONS)
    channel: Any = conn.channel()
    queue = Queue(QUEUE, Exchange(QUEUE, type="direct"), routing_key=QUEUE)(channel)
    queue.declare()
    producer = conn.Producer(channel)
    for i in range(count):
        producer.publish({"n": i}, exchange=QUEUE, routing_key=QUEUE, serializer="json")
    messages = [channel.basic_get(QUEUE, no_ack=False) for _ in range(count)]
    assert all(m is not None for m in messages)
    return conn, channel, messages


def bodies(valkey: redis.Redis) -> list[int]:
    """The ``n`` of every message waiting in the queue's list."""
    out = []
    for raw in valkey.lrange(QUEUE, 0, -1):
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        out.append(json.loads(body)["n"])
    return sorted(out)


def test_a_delivery_is_attributed_to_its_worker_and_an_ack_clears_both(valkey: redis.Redis, redis_server: Any) -> None:
    conn, channel, messages = deliver(redis_server.url, 2)
    try:
        tags = {m.delivery_tag for m in messages}
        assert valkey.smembers(inflight.inflight_key()) == tags
        assert set(valkey.hkeys(UNACKED)) == tags and valkey.zcard(INDEX) == 2
        assert valkey.exists(inflight.heartbeat_key()) and inflight.worker_id() in inflight.registered(valkey)
        messages[0].ack()
        assert valkey.smembers(inflight.inflight_key()) == {messages[1].delivery_tag}
        assert valkey.zcard(INDEX) == 1
    finally:
        messages[1].ack()
        conn.close()


def test_racing_reapers_return_each_message_of_a_lost_worker_exactly_once(
    valkey: redis.Redis, redis_server: Any
) -> None:
    conn, _, messages = deliver(redis_server.url, 20)
    worker = inflight.worker_id()
    valkey.delete(inflight.heartbeat_key(worker))  # the worker is gone: its heartbeat expired
    entry = inflight.registered(valkey)[worker]
    fleet_transport._orphans.clear()

    barrier = threading.Barrier(4)
    results: list[int] = []

    def race() -> None:
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        barrier.wait()
        results.append(reaper.reap(client, worker, entry, url=redis_server.url))
        client.close()

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert valkey.llen(QUEUE) == 20, "every message back once: nothing doubled, nothing lost"
    assert bodies(valkey) == list(range(20))
    assert valkey.hlen(UNACKED) == 0 and valkey.zcard(INDEX) == 0  # the per-queue in-flight count is right
    assert not valkey.exists(inflight.inflight_key(worker)) and worker not in inflight.registered(valkey)
    restored = [json.loads(raw) for raw in valkey.lrange(QUEUE, 0, -1)]
    assert all(m["properties"]["delivery_info"]["redelivered"] for m in restored)
    del messages
    conn.collect()


def test_a_live_worker_is_never_reaped(valkey: redis.Redis, redis_server: Any) -> None:
    conn, _, messages = deliver(redis_server.url, 3)
    try:
        assert reaper.reap_lost_workers(valkey) == {}
        assert valkey.hlen(UNACKED) == 3 and valkey.llen(QUEUE) == 0
    finally:
        for m in messages:
            m.ack()
        conn.close()


def test_a_task_running_across_a_reconnect_acks_through_a_fresh_client(
    valkey: redis.Redis, redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, channel, [running, waiting] = deliver(redis_server.url, 2)
    monkeypatch.setattr(fleet_transport, "running_delivery_tags", lambda: {running.delivery_tag})
    conn.close()  # what Celery does to the old connection on a broker loss
    assert channel.closed and channel.connection is None
    # the prefetched message nobody will run went back at close; the running one stays in flight
    assert valkey.llen(QUEUE) == 1 and set(valkey.hkeys(UNACKED)) == {running.delivery_tag}
    running.ack()  # the task finished after the reconnect: the old channel's pool is gone
    assert valkey.hlen(UNACKED) == 0 and valkey.zcard(INDEX) == 0
    assert not valkey.smembers(inflight.inflight_key())
    del waiting
