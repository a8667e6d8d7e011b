"""The DLQ store on a real redis-server: one entry per job, paging and filters, expiry, purge, size metric."""

from __future__ import annotations

import uuid

import pytest
from taskfleet_core.broker import keys
from taskfleet_core.reliability import dlq


@pytest.fixture
def store(redis_client) -> dlq.DeadLetterQueue:
    queue = dlq.DeadLetterQueue(redis_client, retention_seconds=3600)
    queue.purge()
    yield queue
    queue.purge()


def failure(store: dlq.DeadLetterQueue, job_id: str, task: str = "maintenance.canary", **extra) -> dlq.DeadLetter:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        return store.add_failure(
            queue=extra.pop("queue", "default"),
            task=task,
            job_id=job_id,
            args=[],
            kwargs={"x": 1},
            exc=exc,
            reason=extra.pop("reason", dlq.PERMANENT),
            **extra,
        )


def test_a_job_dead_lettered_twice_is_one_entry(store: dlq.DeadLetterQueue) -> None:
    job = uuid.uuid4().hex
    first = failure(store, job)
    again = failure(store, job)
    assert store.sizes()["default"] == 1
    assert again.times_dead_lettered == 2 and again.first_seen_at == first.first_seen_at
    assert "RuntimeError: boom" in (store.get(job).traceback or "")


def test_paging_and_filters(store: dlq.DeadLetterQueue) -> None:
    ids = [failure(store, f"job-{i}").id for i in range(7)]
    failure(store, "mail-1", task="email.send_email", queue="email", reason=dlq.EXHAUSTED)
    total, page = store.page(queue="default", offset=2, limit=3)
    assert total == 7 and [e.id for e in page] == ids[2:5]  # oldest first
    assert [e.id for e in store.iter(task="email.send_email")] == ["mail-1"]
    assert [e.id for e in store.iter(reason=dlq.EXHAUSTED)] == ["mail-1"]
    assert store.purge(queue="default") == 7 and store.sizes() == {"default": 0, "matching": 0, "email": 1, "sync": 0}


def test_entries_expire_and_their_index_is_cleaned(store: dlq.DeadLetterQueue, redis_client) -> None:
    entry = failure(store, "short-lived")
    redis_client.delete(keys.DLQ_ENTRY_KEY.format(entry_id=entry.id))  # what the TTL does
    assert list(store.iter()) == [] and store.sizes()["default"] == 0
    assert 0 < redis_client.ttl(keys.DLQ_ENTRY_KEY.format(entry_id=failure(store, "x").id)) <= 3600
