"""The DLQ store's bookkeeping under concurrent callers on a real valkey-server: no lost update, no entry that is
stored but unindexed, one winner per purge. Threads with their own connections, started together by a barrier."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from taskfleet_core.broker import keys
from taskfleet_core.reliability import dlq


@pytest.fixture
def store(redis_client: redis.Redis) -> Iterator[dlq.DeadLetterQueue]:
    queue = dlq.DeadLetterQueue(redis_client, retention_seconds=3600)
    queue.purge()
    yield queue
    queue.purge()


def _letter(entry_id: str, **fields: Any) -> dlq.DeadLetter:
    return dlq.DeadLetter(
        id=entry_id, queue="email", reason=dlq.PERMANENT, task="email.send_email", job_id=entry_id, **fields
    )


def _together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads that start at the same instant."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def _own_store(redis_client: redis.Redis) -> dlq.DeadLetterQueue:
    """A store on its own connection pool (as separate API and worker processes have)."""
    url = "redis://{host}:{port}/0".format(**redis_client.connection_pool.connection_kwargs)
    return dlq.DeadLetterQueue(redis.Redis.from_url(url, decode_responses=True), retention_seconds=3600)


def test_twenty_concurrent_adds_of_one_id_count_twenty(store: dlq.DeadLetterQueue, redis_client) -> None:
    job = uuid.uuid4().hex
    stores = [_own_store(redis_client) for _ in range(20)]
    seen = _together(20, lambda i: stores[i].add(_letter(job, exception_message=f"copy {i}")).times_dead_lettered)
    entry = store.get(job)
    assert entry is not None and entry.times_dead_lettered == 20
    assert sorted(seen) == list(range(1, 21))  # every add saw its own count: none overwrote another
    assert store.sizes()["email"] == 1 and len({entry.first_seen_at}) == 1


def test_iter_racing_add_never_leaves_a_stored_entry_unindexed(store: dlq.DeadLetterQueue, redis_client) -> None:
    """3,000 rounds of "dead-lettered, expired, dead-lettered again" against readers listing the DLQ all along: a
    reader that saw the entry gone must not unindex it after it came back. Each entry is checked (stored and
    indexed) a few rounds later, when no reader still holds a stale view of it, then removed."""
    readers = [_own_store(redis_client) for _ in range(3)]
    done = threading.Event()
    listings = Counter[int]()

    def read(reader: dlq.DeadLetterQueue) -> None:
        while not done.is_set():
            listings[len(list(reader.iter("email")))] += 1

    threads = [threading.Thread(target=read, args=(reader,)) for reader in readers]
    for thread in threads:
        thread.start()
    index = keys.DLQ_INDEX_KEY.format(queue="email")
    ids = [f"race-{i}" for i in range(3000)]
    unindexed: list[str] = []

    def check(entry_id: str) -> None:
        assert redis_client.exists(keys.DLQ_ENTRY_KEY.format(entry_id=entry_id))
        if redis_client.zscore(index, entry_id) is None:
            unindexed.append(entry_id)
        store.remove(_letter(entry_id))

    try:
        for n, entry_id in enumerate(ids):
            store.add(_letter(entry_id))
            redis_client.delete(keys.DLQ_ENTRY_KEY.format(entry_id=entry_id))  # what its TTL does
            store.add(_letter(entry_id))  # the same job dead-lettered again
            if n >= 20:
                check(ids[n - 20])
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    for entry_id in ids[-20:]:
        check(entry_id)
    assert unindexed == [], f"{len(unindexed)} of {len(ids)} entries stored but not indexed"
    assert store.sizes()["email"] == 0 == len(list(store.iter("email")))
    assert sum(listings.values()) > 100  # the readers really raced the writer


def test_an_entry_keeps_its_json_types_through_the_script(store: dlq.DeadLetterQueue) -> None:
    big = 2**62 + 1  # cjson would round this; the script never re-encodes the caller's JSON
    store.add(_letter("types", args=[], kwargs={}, headers={"n": big, "nested": {"list": []}}))
    again = store.add(_letter("types", args=[big], kwargs={"to": ["a@example.com"]}))
    entry = store.get("types")
    assert entry is not None and entry.args == [big] and entry.kwargs == {"to": ["a@example.com"]}
    assert again.times_dead_lettered == entry.times_dead_lettered == 2
    first = store.add(_letter("empty", args=[], kwargs={}))
    stored = store.get("empty")
    assert (
        stored is not None and stored.args == [] and stored.kwargs == {} and stored.first_seen_at == first.first_seen_at
    )


def test_concurrent_purges_of_one_entry_have_one_winner(store: dlq.DeadLetterQueue, redis_client) -> None:
    store.add(_letter("contested"))
    stores = [_own_store(redis_client) for _ in range(10)]
    outcomes = _together(10, lambda i: stores[i].purge_one("contested").status)
    assert Counter(outcomes) == {dlq.PURGED: 1, dlq.ALREADY_PURGED: 9}
    assert store.get("contested") is None and store.sizes()["email"] == 0
    settled = store.settled("contested")
    assert settled is not None and settled.action == dlq.PURGED and settled.job_id is None
    assert store.purge_one("never-there").status == dlq.MISSING


def test_two_bulk_purges_count_each_entry_once(store: dlq.DeadLetterQueue, redis_client) -> None:
    for i in range(50):
        store.add(_letter(f"bulk-{i}"))
    stores = [_own_store(redis_client) for _ in range(2)]
    counts = _together(2, lambda i: stores[i].purge(queue="email"))
    assert sum(counts) == 50 and store.sizes()["email"] == 0


def test_a_replay_message_is_the_envelope_send_task_would_push(redis_client) -> None:
    """The claim script pushes an envelope built by Celery and kombu; it matches a real ``send_task``'s field by
    field (ids, tags and times aside), so workers, the reaper and the exporter read it as any other message."""
    from kombu.utils.json import loads
    from taskfleet_core.tasks.app import create_app

    app = create_app("dlq-envelope-test")
    entry = _letter("envelope", kwargs={"to": ["a@example.com"], "subject": "s", "text": "t"})
    entry.first_seen_at = "2026-01-01T00:00:00+00:00"
    ours = dlq.replay_message(app, entry, dlq.replay_job_id(entry))
    redis_client.delete("email")
    app.send_task("email.send_email", kwargs=entry.kwargs, headers={dlq.REPLAY_OF_HEADER: "envelope"})
    theirs = loads(redis_client.rpop("email"))
    mine = loads(ours.payload)
    assert ours.list_key == "email" and ours.queue == "email" and ours.task == "email.send_email"
    assert set(mine) == set(theirs) and set(mine["headers"]) == set(theirs["headers"])
    assert set(mine["properties"]) == set(theirs["properties"])
    assert mine["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    same = ("content-type", "content-encoding")
    assert {k: mine[k] for k in same} == {k: theirs[k] for k in same}
    for name in ("body_encoding", "delivery_mode", "priority"):
        assert mine["properties"][name] == theirs["properties"][name]
    assert mine["headers"]["id"] == dlq.replay_job_id(entry) and mine["headers"][dlq.REPLAY_OF_HEADER] == "envelope"
    mine_body, their_body = (json.loads(base64.b64decode(m["body"])) for m in (mine, theirs))
    assert mine_body == [[], entry.kwargs, their_body[2]] and their_body[:2] == mine_body[:2]


def test_the_in_flight_check_stays_cheap_with_a_full_fleet(store: dlq.DeadLetterQueue, redis_client, capsys) -> None:
    """The replay script reads every in-flight delivery of the queue and the consuming end of its lists: with
    1,000 messages held by workers and 5,000 waiting, one claim still blocks Valkey for a few milliseconds
    (measured by Valkey itself: ``INFO commandstats``). Prints the figure docs/reliability.md quotes."""
    from kombu.utils.json import loads
    from taskfleet_core.tasks.app import create_app

    app = create_app("dlq-cost-test")
    unacked = dlq.QUEUES["email"].unacked_key
    kwargs = {"to": ["a@example.com"], "subject": "s", "text": "t" * 400}
    payloads = [dlq.replay_message(app, _letter(f"w-{i}", kwargs=kwargs), uuid.uuid4().hex).payload for i in range(20)]
    redis_client.delete("email", unacked)
    try:
        pipe = redis_client.pipeline(transaction=False)
        for i in range(5000):  # a backlog of realistic messages, and 1,000 deliveries held by workers
            pipe.lpush("email", payloads[i % 20])
            if i < 1000:
                pipe.hset(unacked, f"tag-{i}", json.dumps([loads(payloads[i % 20]), "email", "email"]))
        pipe.execute()
        entries = [store.add(_letter(f"cost-{i}", kwargs=kwargs)) for i in range(20)]
        redis_client.config_resetstat()
        outcomes = [store.replay(e.id, app, record_ttl=60).status for e in entries]
        stats = redis_client.info("commandstats")
    finally:
        redis_client.delete("email", unacked, "taskfleet:doorbell:email")
    assert outcomes == [dlq.REPLAYED] * 20
    per_call_ms = stats["cmdstat_eval"]["usec_per_call"] / 1000
    with capsys.disabled():
        print(f"\nreplay claim, 1,000 in flight and 5,000 waiting: {per_call_ms:.2f} ms per call in Valkey")
    assert per_call_ms < 50
