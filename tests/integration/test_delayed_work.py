"""Delayed work lives in Valkey, never in a worker (broker/schedule.py): countdowns, ETAs and rate-limit
deferrals wait in ``taskfleet:scheduled:<queue>``, the housekeeping promoter moves them onto the list when due,
and a SIGKILLed worker strands none of them -- with the production visibility timeout (3600 s) untouched.

Each test starts its own workers (``worker_factory``): no other worker of these queues runs meanwhile.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from kombu import Producer
from taskfleet_core.broker import schedule
from taskfleet_core.tasks.app import create_app
from taskfleet_core.tasks.queues import QUEUES

from tests.integration.helpers import submit, wait_for_job

#: Compressed rate-limit windows for the burst tests: email's 30/min becomes 30 per 15 s.
RATE_SCALE = "0.25"


def in_lists(r: redis.Redis, queue: str, job_id: str) -> bool:
    return any(job_id in item for name in QUEUES[queue].waiting_lists() for item in r.lrange(name, 0, -1))


def in_unacked(r: redis.Redis, queue: str, job_id: str) -> bool:
    return any(job_id in value for value in r.hvals(QUEUES[queue].unacked_key))


def scheduled(r: redis.Redis, queue: str, job_id: str) -> bool:
    return r.zscore(schedule.schedule_key(queue), job_id) is not None


def test_a_countdown_and_an_eta_wait_in_the_schedule_then_run_when_due(api, worker_factory, redis_client) -> None:
    worker_factory("default")
    submitted = time.time()
    by_countdown = submit(api, "maintenance.canary", kwargs={"payload": {"via": "countdown"}}, countdown=4)
    eta = datetime.now(UTC) + timedelta(seconds=4)
    by_eta = submit(api, "maintenance.canary", kwargs={"payload": {"via": "eta"}}, eta=eta.isoformat())

    for job_id in (by_countdown, by_eta):
        assert scheduled(redis_client, "default", job_id)
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        assert job["state"] == "PENDING"
        due = datetime.fromisoformat(job["due_at"]).timestamp()
        assert submitted + 3 < due < time.time() + 4.5, job
    queues = {q["name"]: q for q in api.get("/api/v1/queues").json()}
    assert queues["default"]["scheduled"] >= 2 and {"waiting", "in_flight"} <= set(queues["default"])

    time.sleep(2)  # a live worker is consuming: it must not have taken them (no worker holds delayed work)
    for job_id in (by_countdown, by_eta):
        assert scheduled(redis_client, "default", job_id)
        assert not in_lists(redis_client, "default", job_id) and not in_unacked(redis_client, "default", job_id)

    for job_id in (by_countdown, by_eta):
        job = wait_for_job(api, job_id, timeout=20)
        assert job["state"] == "SUCCESS", job
        assert job["due_at"] is None and not scheduled(redis_client, "default", job_id)
        assert datetime.fromisoformat(job["date_done"]).timestamp() >= submitted + 3.5


def test_revoking_a_scheduled_job_takes_it_out_of_the_schedule(api, redis_client) -> None:
    job_id = submit(api, "maintenance.canary", countdown=60)
    assert scheduled(redis_client, "default", job_id)
    assert api.post(f"/api/v1/jobs/{job_id}/revoke").json()["state"] == "REVOKED"
    assert not scheduled(redis_client, "default", job_id)
    assert job_id not in redis_client.hkeys(schedule.messages_key("default"))


def _burst(api, n: int, tag: str) -> dict[str, str]:
    ids = {}
    for i in range(n):
        to = f"{tag}-{i}-{uuid.uuid4().hex[:6]}@example.com"
        ids[to] = submit(api, "email.send_email", kwargs={"to": [to], "subject": f"burst {i}", "text": "x"})
    return ids


def _wait_for_deferred_in_schedule(api, redis_client, ids: dict[str, str], timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deferred = [
            job_id
            for job_id in ids.values()
            if scheduled(redis_client, "email", job_id)
            and api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "DEFERRED"
        ]
        if deferred:
            return deferred
        time.sleep(0.2)
    raise TimeoutError("no job of the burst was deferred into the schedule")


def test_a_rate_limited_burst_defers_into_the_schedule(api, worker_factory, redis_client, smtp_server) -> None:
    worker_factory("email", env={"RATE_LIMIT_TIME_SCALE": RATE_SCALE})
    ids = _burst(api, 34, "burst")
    deferred = _wait_for_deferred_in_schedule(api, redis_client, ids)
    # the deferral due last: still seconds away, so the promoter cannot move it while we look
    latest = max(deferred, key=lambda job_id: redis_client.zscore(schedule.schedule_key("email"), job_id) or 0)
    job = api.get(f"/api/v1/jobs/{latest}").json()
    assert job["due_at"] and job["progress"]["reason"].startswith("rate limit")
    assert datetime.fromisoformat(job["due_at"]).timestamp() > time.time() + 1, "due too soon to tell: " + str(job)
    assert scheduled(redis_client, "email", latest)
    assert not in_unacked(redis_client, "email", latest) and not in_lists(redis_client, "email", latest)
    for to, job_id in ids.items():
        assert wait_for_job(api, job_id, timeout=90)["state"] == "SUCCESS"
        assert len(smtp_server.handler.to(to)) == 1


def test_sigkill_of_the_worker_strands_no_delayed_work(api, worker_factory, redis_client, smtp_server) -> None:
    """Deferred and countdown jobs survive a SIGKILL of the worker's main process: a new worker runs them
    when due, long before the (production, 3600 s) visibility timeout."""
    env = {"RATE_LIMIT_TIME_SCALE": RATE_SCALE}
    first = worker_factory("email", env=env)
    ids = _burst(api, 33, "kill")
    later = {f"later-{i}-{uuid.uuid4().hex[:6]}@example.com": "" for i in range(3)}
    for to in later:
        later[to] = submit(api, "email.send_email", kwargs={"to": [to], "subject": "later", "text": "x"}, countdown=20)
    _wait_for_deferred_in_schedule(api, redis_client, ids)
    # kill when nothing runs or is held: every job is done or waits in the schedule, none due in the next seconds
    deadline = time.monotonic() + 30
    while redis_client.zcard(QUEUES["email"].unacked_index_key) or any(
        not scheduled(redis_client, "email", job_id) and api.get(f"/api/v1/jobs/{job_id}").json()["state"] != "SUCCESS"
        for job_id in ids.values()
    ):
        assert time.monotonic() < deadline, "the burst's first jobs did not finish"
        time.sleep(0.2)
    [(_, first_due)] = redis_client.zrange(schedule.schedule_key("email"), 0, 0, withscores=True)
    assert first_due > time.time() + 1, "a deferral came due before the kill: the test cannot tell"
    waiting = [job_id for job_id in [*ids.values(), *later.values()] if scheduled(redis_client, "email", job_id)]
    assert len(waiting) >= 4  # the three countdowns and at least one deferral

    first.signal(signal.SIGKILL)
    assert first.process is not None
    first.process.wait(10)
    assert redis_client.hlen(QUEUES["email"].unacked_key) == 0  # the dead worker held nothing
    for job_id in waiting:
        assert scheduled(redis_client, "email", job_id)

    worker_factory("email", env=env)
    for to, job_id in {**ids, **later}.items():
        job = wait_for_job(api, job_id, timeout=60)
        assert job["state"] == "SUCCESS", job
        assert len(smtp_server.handler.to(to)) == 1


# --- the transport and the promoter, against the real server ----------------------------------------------


@pytest.fixture
def producer_app():
    app = create_app("test-delayed-producer")
    yield app
    app.close()


def _publish(producer: Producer, queue: str, body: dict, headers: dict, priority: int = 0) -> None:
    spec = QUEUES[queue]
    producer.publish(
        body,
        exchange=spec.exchange,
        routing_key=spec.routing_key,
        headers=headers,
        priority=priority,
        serializer="json",
        declare=[spec.kombu_queue()],  # the binding, in case no worker of the queue declared it yet
    )


def test_the_transport_files_future_etas_in_the_schedule_also_in_a_publish_batch(
    producer_app, redis_client, monkeypatch
) -> None:
    from kombu.transport import redis as kombu_redis

    batched: list[str] = []
    add = kombu_redis.PublishBatch.add
    monkeypatch.setattr(
        kombu_redis.PublishBatch, "add", lambda self, name, *a: (batched.append(name), add(self, name, *a))
    )
    queue = "matching"  # no worker of this queue runs in this module
    soon, later, now_id = (uuid.uuid4().hex for _ in range(3))
    eta = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    with producer_app.connection_for_write() as conn:
        producer = Producer(conn.default_channel)
        _publish(producer, queue, {"n": 1}, {"id": soon, "eta": eta}, priority=3)
        with producer.batch():
            _publish(producer, queue, {"n": 2}, {"id": later, "eta": eta})
            _publish(producer, queue, {"n": 3}, {"id": now_id, "eta": datetime.now(UTC).isoformat()})
    try:
        # kombu's batch path: the schedule script, and the push with its doorbell ring, buffered in its pipeline
        assert batched == ["eval", "lpush", "xadd"]
        assert scheduled(redis_client, queue, soon) and scheduled(redis_client, queue, later)
        assert not scheduled(redis_client, queue, now_id) and in_lists(redis_client, queue, now_id)
        entries = redis_client.hgetall(schedule.messages_key(queue))
        # the list kombu would have used, priority sub-list included, and kombu's envelope unchanged
        assert entries[soon].split("\n", 1)[0] == "matching\x06\x163"
        assert entries[later].split("\n", 1)[0] == "matching"
        assert json.loads(entries[soon].split("\n", 1)[1])["headers"]["id"] == soon
    finally:
        for member in (soon, later):
            schedule.cancel(redis_client, queue, member)
        for name in QUEUES[queue].waiting_lists():
            for item in redis_client.lrange(name, 0, -1):
                if now_id in item:
                    redis_client.lrem(name, 0, item)


def test_racing_promoters_deliver_each_due_entry_exactly_once(redis_server) -> None:
    """Four promoters, small batches, 600 due entries: each entry lands on its list once, none is left."""
    queue = f"race-{uuid.uuid4().hex[:8]}"
    target = f"{queue}-list"
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    past = time.time() - 5
    pipe = r.pipeline(transaction=False)
    for i in range(600):
        payload = json.dumps({"headers": {"id": f"m{i}"}, "n": i})
        pipe.eval(schedule.SCHEDULE_LUA, 2, schedule.schedule_key(queue), schedule.messages_key(queue), f"m{i}",
                  past + i / 1000, schedule.entry_value(target, payload))  # fmt: skip
    pipe.zadd(schedule.schedule_key(queue), {"not-due": time.time() + 3600})
    pipe.hset(schedule.messages_key(queue), "not-due", schedule.entry_value(target, "{}"))
    pipe.execute()

    moved: list[int] = []
    start = threading.Barrier(4)

    def promoter() -> None:
        own = redis.Redis.from_url(redis_server.url, decode_responses=True)
        start.wait()
        moved.append(schedule.promote_queue(own, queue, batch=7, rounds=1000))
        own.close()

    threads = [threading.Thread(target=promoter) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        delivered = [json.loads(item)["n"] for item in r.lrange(target, 0, -1)]
        assert sorted(delivered) == list(range(600)) and sum(moved) == 600
        assert delivered[-1] == 0  # LPUSH in due order: the consumer (BRPOP, the right end) gets the oldest first
        assert r.zrange(schedule.schedule_key(queue), 0, -1) == ["not-due"]
        assert r.hkeys(schedule.messages_key(queue)) == ["not-due"]
    finally:
        r.delete(target, schedule.schedule_key(queue), schedule.messages_key(queue))
        r.close()
