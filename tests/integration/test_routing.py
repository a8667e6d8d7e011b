"""Routing: every contract's task lands in its own queue's list in Valkey, priorities in kombu's sub-lists."""

import json

import pytest
import redis
from taskfleet_core.tasks.app import create_app
from taskfleet_core.tasks.contracts import CONTRACTS
from taskfleet_core.tasks.queues import QUEUES


@pytest.fixture
def producer():
    return create_app("test-producer")


@pytest.fixture
def empty_broker(redis_client: redis.Redis) -> redis.Redis:
    """Empty queues. Not FLUSHDB: that would also drop kombu's bindings, which producers cache."""
    for spec in QUEUES.values():
        redis_client.delete(*spec.waiting_lists())
    return redis_client


def _task_names(client: redis.Redis, key: str) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange(key, 0, -1)]


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_contract_lands_in_its_queue(name: str, producer, empty_broker: redis.Redis) -> None:
    producer.send_task(name, kwargs={})
    queue = CONTRACTS[name].queue
    assert _task_names(empty_broker, queue) == [name]
    for other in QUEUES:
        if other != queue:
            assert empty_broker.llen(other) == 0


def test_priority_goes_to_kombu_sub_list(producer, empty_broker: redis.Redis, api) -> None:
    producer.send_task("email.send_email", kwargs={}, priority=6)
    assert _task_names(empty_broker, "email\x06\x166") == ["email.send_email"]
    email = {q["name"]: q for q in api.get("/api/v1/queues").json()}["email"]
    assert email["waiting"] == 1 and email["waiting_by_priority"]["6"] == 1
