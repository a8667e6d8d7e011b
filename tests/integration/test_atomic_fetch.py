"""Atomic fetch (broker/fetch.py): a popped message is attributed to its worker in the same step as the pop.

kombu's BRPOP popped first and wrote ``unacked`` in a second round trip; a worker SIGKILLed between the two lost
the message for good (1 job in a 3,000-job chaos run). These tests run the fleet transport against a real
valkey-server: the fetch script pops and registers in one call, hands malformed items to the DLQ instead of
registering them, and an idle consumer waiting on the doorbell wakes on a publish.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Consumer, Producer
from taskfleet_core.broker import fetch, inflight, keys
from taskfleet_core.broker.transport import Transport
from taskfleet_core.reliability import dlq
from taskfleet_core.tasks.queues import QUEUES

QUEUE = "matching"  # no worker of this queue runs in this module
SPEC = QUEUES[QUEUE]


@pytest.fixture
def clean(redis_client: redis.Redis) -> Iterator[None]:
    redis_client.flushdb()
    yield
    redis_client.flushdb()


@pytest.fixture
def connection(fleet_env: dict[str, str], clean: None) -> Iterator[Connection]:
    options = {
        "unacked_key": SPEC.unacked_key,
        "unacked_index_key": SPEC.unacked_index_key,
    }
    with Connection(fleet_env["REDIS_URL"], transport=Transport, transport_options=options) as conn:
        yield conn


def _publish(conn: Connection, body: dict) -> str:
    job_id = uuid.uuid4().hex
    Producer(conn.channel()).publish(
        body,
        exchange=SPEC.exchange,
        routing_key=SPEC.routing_key,
        headers={"id": job_id},
        serializer="json",
        declare=[SPEC.kombu_queue()],
    )
    return job_id


def _fetch_args(lists: list[str], worker: str) -> list:
    rest = [SPEC.unacked_key, SPEC.unacked_index_key, inflight.inflight_key(worker), keys.WORKERS_KEY]
    rest += [inflight.heartbeat_key(worker), fetch.doorbell_key(QUEUE)]
    return [len(lists) + len(rest), *lists, *rest, len(lists), "1700000000.0", worker, "{}", 30000]


def test_the_fetch_script_pops_and_attributes_in_one_step(connection: Connection, redis_client: redis.Redis) -> None:
    _publish(connection, {"n": 1})
    [raw] = redis_client.lrange(QUEUE, 0, -1)
    tag = json.loads(raw)["properties"]["delivery_tag"]
    worker = "host:1:test"

    dest, item = redis_client.eval(fetch.FETCH_LUA, *_fetch_args(SPEC.waiting_lists(), worker))

    assert (dest, item) == (QUEUE, raw)
    assert redis_client.llen(QUEUE) == 0
    stored, exchange, routing_key = json.loads(redis_client.hget(SPEC.unacked_key, tag))
    assert stored == json.loads(raw), "kombu's unacked entry holds the envelope unchanged"
    assert (exchange, routing_key) == (SPEC.exchange, SPEC.routing_key)
    assert redis_client.zscore(SPEC.unacked_index_key, tag) == 1700000000.0
    assert redis_client.smembers(inflight.inflight_key(worker)) == {tag}, "attributed: the reaper can return it"
    assert redis_client.hget(keys.WORKERS_KEY, worker) == "{}"
    assert redis_client.pttl(inflight.heartbeat_key(worker)) > 0


def test_priority_order_and_empty_answers_carry_the_doorbell(connection: Connection, redis_client: redis.Redis) -> None:
    lists = SPEC.waiting_lists()
    redis_client.lpush(lists[-1], json.dumps({"properties": {"delivery_tag": "b", "delivery_info": {}}}))
    redis_client.lpush(lists[0], json.dumps({"properties": {"delivery_tag": "a", "delivery_info": {}}}))
    first = redis_client.eval(fetch.FETCH_LUA, *_fetch_args(lists, "w"))
    assert first[0] == lists[0], "lists are tried in the order given (kombu's priority order)"
    redis_client.eval(fetch.FETCH_LUA, *_fetch_args(lists, "w"))
    assert redis_client.eval(fetch.FETCH_LUA, *_fetch_args(lists, "w")) == ["", "0-0"]
    ring = redis_client.xadd(fetch.doorbell_key(QUEUE), {"n": "1"})
    assert redis_client.eval(fetch.FETCH_LUA, *_fetch_args(lists, "w")) == ["", ring]


def test_a_malformed_item_is_dead_lettered_not_registered(connection: Connection, redis_client: redis.Redis) -> None:
    redis_client.lpush(QUEUE, "not json at all")
    received: list = []
    with Consumer(connection.channel(), [SPEC.kombu_queue()], callbacks=[lambda b, m: received.append(b)]):
        job_id = _publish(connection, {"n": 2})
        connection.drain_events(timeout=10)  # the malformed item: dead-lettered, the consumer goes on
        while not received:
            connection.drain_events(timeout=10)
    assert received == [{"n": 2}]
    [entry] = list(dlq.dead_letter_queue().iter(QUEUE))
    assert entry.reason == dlq.MALFORMED and entry.raw_body == "not json at all"
    assert redis_client.hlen(SPEC.unacked_key) == 1, "only the real message is in unacked"
    assert job_id in next(iter(redis_client.hvals(SPEC.unacked_key)))


def test_an_idle_consumer_wakes_on_the_doorbell(
    connection: Connection, redis_client: redis.Redis, fleet_env: dict[str, str]
) -> None:
    received: list = []
    channel = connection.channel()
    channel.brpop_timeout = 30  # an idle wait ends before 30 s only if the doorbell rings
    with Consumer(channel, [SPEC.kombu_queue()], callbacks=[lambda b, m: (received.append(b), m.ack())]):
        with pytest.raises(TimeoutError):
            connection.drain_events(timeout=1)  # empty: the channel now waits on the doorbell (30 s wait)
        with Connection(fleet_env["REDIS_URL"], transport=Transport) as other:
            _publish(other, {"n": 3})
        connection.drain_events(timeout=10)  # inside the 30 s wait: only the doorbell can have woken it
    assert received == [{"n": 3}]
    assert redis_client.hlen(SPEC.unacked_key) == 0 and redis_client.zcard(SPEC.unacked_index_key) == 0
    assert not redis_client.keys("taskfleet:inflight:*"), "acked: nothing left attributed"
