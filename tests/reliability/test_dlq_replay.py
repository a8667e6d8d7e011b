"""DLQ replay and purge on real processes: the uvicorn API, a real email worker, valkey-server and an SMTP sink.

Effects are counted where they happen: mails accepted by the SMTP sink (per recipient) and completed runs of each
replayed job in the worker's log (``Task ...[id] succeeded``). The email task deduplicates by job id, so the
second count is what shows a replay published once, not only sent once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from taskfleet_core.reliability import dlq
from taskfleet_core.tasks.errors import PermanentError

from tests.reliability.harness import TOKEN, Fleet
from tests.support.processes import ServiceProcess

TASK = "email.send_email"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    # the email queue's fleet-wide limit (30 per minute) compressed to about a second: not what is tested here
    fleet = Fleet(Path(tmp_path_factory.mktemp("dlq-replay")), RATE_LIMIT_TIME_SCALE="0.02").start()
    fleet.start_workers("email", 1, "--concurrency", "4")
    yield fleet
    fleet.stop()


@pytest.fixture
def store(fleet: Fleet) -> dlq.DeadLetterQueue:
    return dlq.DeadLetterQueue(fleet.valkey)


def dead_letter(store: dlq.DeadLetterQueue, address: str, job_id: str | None = None) -> dlq.DeadLetter:
    """An email job dead-lettered as ``FleetTask.on_failure`` records it."""
    return store.add_failure(
        queue="email",
        task=TASK,
        job_id=job_id or uuid.uuid4().hex,
        args=[],
        kwargs={"to": [address], "subject": "dlq replay", "text": "hello again"},
        exc=PermanentError("mailbox full"),
        reason=dlq.PERMANENT,
    )


def addresses(n: int, prefix: str = "r") -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{prefix}-{run}-{i}@example.com" for i in range(n)]


def together(fleet: Fleet, n: int, work: Callable[[httpx.Client, int], Any]) -> list[Any]:
    """``n`` requests, each on its own connection to the API, released at the same instant."""
    barrier = threading.Barrier(n)
    clients = [
        httpx.Client(
            base_url=f"http://127.0.0.1:{fleet.api_port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        )
        for _ in range(n)
    ]

    def run(i: int) -> Any:
        barrier.wait()
        return work(clients[i], i)

    try:
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(run, range(n)))
    finally:
        for client in clients:
            client.close()


def mails_to(fleet: Fleet) -> Counter[str]:
    with fleet.smtp.lock:
        return Counter(to for _, _, to in fleet.smtp.messages)


def settle(fleet: Fleet, job_ids: list[str], timeout: float = 60) -> None:
    """Wait until every job succeeded and nothing of the email queue is waiting or running any more."""
    states = fleet.wait_final(job_ids, timeout=timeout, dlq_counts=False)
    assert set(states.values()) <= {"SUCCESS"}, states
    deadline = time.monotonic() + 20
    while (
        fleet.valkey.llen("email")
        or fleet.valkey.hlen("unacked:email")
        or fleet.valkey.zcard("taskfleet:scheduled:email")
    ):
        assert time.monotonic() < deadline, "the email queue did not drain"
        time.sleep(0.2)


def deliveries(fleet: Fleet, job_id: str) -> int:
    """Completed runs of a job (a rate-limit deferral re-publishes the same job: received again, not run)."""
    return sum(proc.log().count(f"[{job_id}] succeeded") for proc in worker_logs(fleet))


def worker_logs(fleet: Fleet) -> list[ServiceProcess]:
    return [proc for proc in fleet.workers if proc.module.endswith("email")]


def test_concurrent_replays_of_one_entry_send_one_mail(fleet: Fleet, store: dlq.DeadLetterQueue) -> None:
    [address] = addresses(1)
    entry = dead_letter(store, address)
    responses = together(fleet, 8, lambda http, _: http.post(f"/api/v1/dlq/{entry.id}/replay"))
    codes = Counter(r.status_code for r in responses)
    bodies = [r.json() for r in responses if r.status_code == 200]
    assert set(codes) <= {200, 409}, [r.text for r in responses]
    assert sum(1 for b in bodies if not b["repeated"]) == 1, bodies  # one request replayed, the rest got its job
    [job] = {b["new_job_id"] for b in bodies}
    assert job == dlq.replay_job_id(entry)  # derived from the entry
    settle(fleet, [job])
    assert mails_to(fleet)[address] == 1 and deliveries(fleet, job) == 1
    # a retried request, later: the same job, nothing sent; the entry is no longer purgeable
    again = fleet.http.post(f"/api/v1/dlq/{entry.id}/replay")
    assert again.status_code == 200 and again.json()["new_job_id"] == job and again.json()["repeated"]
    assert fleet.http.delete(f"/api/v1/dlq/{entry.id}").status_code == 409
    record = fleet.http.get(f"/api/v1/jobs/{job}").json()
    assert record["state"] == "SUCCESS" and record.get("replay_of", entry.job_id) == entry.job_id
    assert fleet.valkey.hget(f"taskfleet:job:{job}", "replay_of") == entry.job_id
    assert mails_to(fleet)[address] == 1 and deliveries(fleet, job) == 1


def test_two_concurrent_bulk_replays_send_each_mail_once(fleet: Fleet, store: dlq.DeadLetterQueue) -> None:
    mails = addresses(10, "bulk")
    entries = [dead_letter(store, a) for a in mails]
    reports = together(fleet, 2, lambda http, _: http.post("/api/v1/dlq/replay", params={"task": TASK}).json())
    replayed = [r["dead_letter_id"] for report in reports for r in report["replayed"]]
    assert sorted(replayed) == sorted(e.id for e in entries), reports  # each entry replayed by exactly one
    settle(fleet, [r["new_job_id"] for report in reports for r in report["replayed"]])
    sent = mails_to(fleet)
    assert [sent[a] for a in mails] == [1] * 10
    assert store.sizes()["email"] == 0


def test_bulk_replay_racing_purge_settles_each_entry_once(fleet: Fleet, store: dlq.DeadLetterQueue) -> None:
    mails = addresses(20, "race")
    entries = {dead_letter(store, a).id: a for a in mails}

    def act(http: httpx.Client, i: int) -> Any:
        if i == 0:
            return http.post("/api/v1/dlq/replay", params={"task": TASK}).json()
        return http.delete("/api/v1/dlq", params={"task": TASK}).json()

    replay, purge = together(fleet, 2, act)
    replayed = {r["dead_letter_id"]: r["new_job_id"] for r in replay["replayed"]}
    purged = set(entries) - set(replayed)
    assert len(replayed) + purge["purged"] == 20, (replay, purge)  # both reports add up to the 20 entries
    assert purge["purged"] == len(purged) and set(replay["refused"]) <= purged  # listed, then purged under it
    assert all(store.settled(e).action == dlq.PURGED for e in purged)  # type: ignore[union-attr]
    settle(fleet, list(replayed.values()))
    time.sleep(1.0)  # a purged entry's job would have been published with the others: give it time to show up
    sent = mails_to(fleet)
    assert {entries[e]: sent[entries[e]] for e in replayed} == {entries[e]: 1 for e in replayed}
    assert [sent[entries[e]] for e in purged] == [0] * len(purged)  # purged ones never run
    assert store.sizes()["email"] == 0


def test_a_replay_is_refused_while_the_original_is_in_flight(fleet: Fleet, store: dlq.DeadLetterQueue) -> None:
    """A late redelivery of the dead-lettered job runs (its SMTP RCPT hangs 4 s) while operators replay it."""
    [address] = addresses(1, "slow")
    busy = fleet.smtp.slow_in_progress
    job = fleet.submit(TASK, kwargs={"to": [address], "subject": "late", "text": "redelivered"})
    assert job is not None
    deadline = time.monotonic() + 30
    while fleet.smtp.slow_in_progress == busy:  # the worker holds it: unacked, mid-SMTP
        assert time.monotonic() < deadline
        time.sleep(0.05)
    entry = dead_letter(store, address, job_id=job)  # its earlier delivery's failure
    responses = together(fleet, 4, lambda http, _: http.post(f"/api/v1/dlq/{entry.id}/replay"))
    assert [r.status_code for r in responses] == [409] * 4
    assert "in flight" in responses[0].json()["detail"] and "a worker is running it" in responses[0].json()["detail"]
    settle(fleet, [job])
    late = fleet.http.post(f"/api/v1/dlq/{entry.id}/replay")  # it has run since: nothing to replay
    assert late.status_code == 409 and "succeeded after it was dead-lettered" in late.json()["detail"]
    assert mails_to(fleet)[address] == 1
    assert store.get(entry.id) is not None  # still there for the operator to purge
    assert fleet.http.delete(f"/api/v1/dlq/{entry.id}").json() == {"purged": 1}
    assert fleet.http.delete(f"/api/v1/dlq/{entry.id}").json() == {"purged": 0}  # a retried purge


def test_a_replay_is_refused_while_a_copy_of_the_original_waits_in_its_queue(fleet: Fleet) -> None:
    """The default queue has no worker here: the original job's message waits in its list."""
    job = fleet.submit("maintenance.canary")
    assert job is not None and fleet.valkey.llen("default") >= 1
    entry = dlq.DeadLetterQueue(fleet.valkey).add(
        dlq.DeadLetter(id=job, queue="default", reason=dlq.TIMEOUT, task="maintenance.canary", job_id=job)
    )
    refused = fleet.http.post(f"/api/v1/dlq/{entry.id}/replay")
    assert refused.status_code == 409 and "waits in list default" in refused.json()["detail"]
    assert fleet.http.delete(f"/api/v1/dlq/{entry.id}").json() == {"purged": 1}
    assert fleet.http.post(f"/api/v1/dlq/{entry.id}/replay").status_code == 409  # purged: not replayable
    assert fleet.http.post("/api/v1/dlq/no-such-entry/replay").status_code == 404
