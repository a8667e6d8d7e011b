"""Publishes cannot vanish (broker/bindings.py): a fleet queue's route does not depend on kombu's binding SET.

kombu's Redis transport looks the queue up in ``_kombu.binding.<exchange>`` and drops a message silently when the
SET is empty. The fleet's producer used to check the SET and re-declare it first; with the key deleted repeatedly
under 2,000 publishes, 1,418 were lost in the window between the check and kombu's lookup. Now every publish to a
fleet queue lands, and one that no fleet queue takes raises.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from kombu import Connection, Producer
from taskfleet_core.broker.bindings import Unroutable
from taskfleet_core.broker.keys import BINDING_KEY, PRIORITY_SEPARATOR
from taskfleet_core.broker.transport import Transport
from taskfleet_core.tasks.app import create_app
from taskfleet_core.tasks.queues import QUEUES

QUEUE = "matching"  # no worker of this queue runs in this module: the list keeps what lands
PUBLISHES = 2000
#: kombu's field separator in a binding member (``Channel.sep``), the same as its priority separator.
KOMBU_SEP = PRIORITY_SEPARATOR


@pytest.fixture
def empty_queue(redis_client: redis.Redis) -> Iterator[None]:
    redis_client.delete(*QUEUES[QUEUE].waiting_lists())
    yield
    redis_client.delete(*QUEUES[QUEUE].waiting_lists())


@pytest.fixture(scope="module")
def producer_app() -> Celery:
    return create_app("test-publish-lands")


def _churn(url: str, stop: threading.Event, deleted: list[int]) -> None:
    """Declare the binding (as a starting worker does) and delete it again (as lost data does), in a tight loop."""
    client = redis.Redis.from_url(url)
    key = BINDING_KEY.format(exchange=QUEUE)
    member = KOMBU_SEP.join([QUEUES[QUEUE].routing_key, "", QUEUE])  # kombu's (routing key, pattern, queue)
    while not stop.is_set():
        client.sadd(key, member)
        deleted[0] += int(client.delete(key))


def test_every_publish_lands_while_the_binding_key_is_deleted_repeatedly(  # type: ignore[no-untyped-def]
    fleet_env, redis_client: redis.Redis, empty_queue: None, producer_app: Celery
) -> None:
    stop, deleted = threading.Event(), [0]
    vandal = threading.Thread(target=_churn, args=(fleet_env["REDIS_URL"], stop, deleted))
    vandal.start()
    errors: list[Exception] = []
    started = time.monotonic()
    try:
        for n in range(PUBLISHES):
            try:
                producer_app.send_task("matching.calculate_company_matches", args=[n], queue=QUEUE)
            except Exception as exc:  # an error to the caller is allowed; a silent loss is not
                errors.append(exc)
    finally:
        stop.set()
        vandal.join(10)
    elapsed = time.monotonic() - started
    landed = sum(int(redis_client.llen(name)) for name in QUEUES[QUEUE].waiting_lists())
    print(f"{PUBLISHES} publishes in {elapsed:.2f}s, binding key deleted {deleted[0]} times: {landed} landed")
    assert deleted[0] > PUBLISHES // 10, "the binding key came and went many times under the publishes"
    assert landed + len(errors) == PUBLISHES, f"{PUBLISHES - landed - len(errors)} publishes vanished silently"
    assert errors == [] and landed == PUBLISHES


def test_a_publish_no_fleet_queue_takes_is_an_error_not_a_drop(  # type: ignore[no-untyped-def]
    fleet_env, redis_client: redis.Redis, empty_queue: None
) -> None:
    spec = QUEUES[QUEUE]
    with Connection(fleet_env["REDIS_URL"], transport=Transport) as connection:
        producer = Producer(connection.channel())
        with pytest.raises(Unroutable, match="no fleet queue for exchange 'matching'"):
            producer.publish({"n": 1}, exchange=spec.exchange, routing_key="not-a-queue", serializer="json")
        producer.publish({"n": 2}, exchange=spec.exchange, routing_key=spec.routing_key, serializer="json")
    assert redis_client.llen(QUEUE) == 1, "the routable publish landed, without any binding declared"
    assert not redis_client.exists(BINDING_KEY.format(exchange=QUEUE)), "nothing read or needed the binding SET"
