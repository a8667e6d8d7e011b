"""``make chaos``: concurrent replay -- operators replaying and purging the same dead letters at once, and the API
SIGKILLed in the middle of it, on a fresh fleet (real API, email worker, valkey-server, SMTP sink).

60 email jobs are dead-lettered: 40 are replayed by three concurrent bulk replays and twenty single replays of
random entries; the other 20 are raced by two bulk purges and a bulk replay. While those requests run, the API is
SIGKILLed and restarted, and a last bulk replay and purge pick up what the kill cut. Each replayed entry must send
exactly one mail (its job run once), each purged one none, and no entry may be lost (neither replayed, purged,
nor still in the DLQ). The row joins the chaos table (tests/chaos/test_chaos.py's ``REPORTS``, var/chaos/report.md).
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from taskfleet_core.reliability import dlq
from taskfleet_core.tasks.errors import PermanentError, TransientError

from tests.chaos.test_chaos import REPORT_PATH, REPORTS, WORKER_LOST_SECONDS
from tests.reliability.harness import TOKEN, Fleet, Report, write_report

TASK = "email.send_email"
REPLAYED, PURGED = 40, 20


@pytest.fixture(scope="module", autouse=True)
def report_table() -> Iterator[None]:
    yield
    write_report(REPORTS, REPORT_PATH)  # with test_chaos.py's rows when both ran


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path / "fleet", WORKER_LOST_SECONDS=WORKER_LOST_SECONDS, RATE_LIMIT_TIME_SCALE="0.1").start()
    yield fleet
    fleet.stop()


def _dead_letter(store: dlq.DeadLetterQueue, address: str, exc: Exception, reason: str) -> str:
    return store.add_failure(
        queue="email",
        task=TASK,
        job_id=uuid.uuid4().hex,
        args=[],
        kwargs={"to": [address], "subject": "chaos replay", "text": "again"},
        exc=exc,
        reason=reason,
    ).id


def _restart_api(fleet: Fleet) -> None:
    """SIGKILL the API process and start it again on the same port; returns once it answers."""
    assert fleet.api_proc is not None and fleet.api_proc.process is not None
    fleet.api_proc.signal(signal.SIGKILL)
    fleet.api_proc.process.wait(10)
    fleet.api_proc.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            if fleet.http.get("/api/v1/dlq/stats").status_code == 200:  # type: ignore[union-attr]
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, fleet.api_proc.log()[-2000:]
        time.sleep(0.2)


@pytest.mark.timeout(300)
def test_concurrent_replay(fleet: Fleet) -> None:
    report, t0 = Report("concurrent replay (+ API SIGKILL)"), time.monotonic()
    fleet.start_workers("email", 1, "--concurrency", "4")
    store = dlq.DeadLetterQueue(fleet.valkey)
    run = uuid.uuid4().hex[:6]
    address: dict[str, str] = {}
    for i in range(REPLAYED):
        to = f"replay-{run}-{i}@example.com"
        address[_dead_letter(store, to, PermanentError("mailbox full"), dlq.PERMANENT)] = to
    for i in range(PURGED):
        to = f"purge-{run}-{i}@example.com"
        address[_dead_letter(store, to, TransientError("greylisted"), dlq.EXHAUSTED)] = to
    permanent = [e for e in address if address[e].startswith("replay-")]

    base = f"http://127.0.0.1:{fleet.api_port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    requests: list[tuple[str, str, dict[str, str]]] = [
        *[("POST", "/api/v1/dlq/replay", {"reason": dlq.PERMANENT})] * 3,
        *[("POST", f"/api/v1/dlq/{e}/replay", {}) for e in random.sample(permanent, 20)],
        *[("DELETE", "/api/v1/dlq", {"reason": dlq.EXHAUSTED})] * 2,
        ("POST", "/api/v1/dlq/replay", {"reason": dlq.EXHAUSTED}),
    ]
    random.shuffle(requests)
    answers: list[Any] = []
    barrier = threading.Barrier(len(requests))

    def call(method: str, path: str, params: dict[str, str]) -> None:
        with httpx.Client(base_url=base, headers=auth, timeout=60) as http:
            barrier.wait()
            try:
                answers.append(http.request(method, path, params=params))
            except httpx.HTTPError as exc:  # cut by the API's SIGKILL
                answers.append(exc)

    threads = [threading.Thread(target=call, args=r) for r in requests]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while store.sizes()["email"] > len(address) // 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    _restart_api(fleet)  # mid-flight: some requests are cut, their entries must be settled or still there
    for thread in threads:
        thread.join(90)
    # the operator repeats what the kill cut: whatever is left is replayed or purged now, once
    last = fleet.http.post("/api/v1/dlq/replay", params={"reason": dlq.PERMANENT})  # type: ignore[union-attr]
    assert last.status_code == 200, last.text
    assert fleet.http.delete("/api/v1/dlq", params={"reason": dlq.EXHAUSTED}).status_code == 200  # type: ignore[union-attr]

    # what became of every entry, from the store's own records
    settled = {e: store.settled(e) for e in address}
    replayed = {e: s.new_job_id for e, s in settled.items() if s and s.action == dlq.REPLAYED and s.new_job_id}
    purged = {e for e, s in settled.items() if s and s.action == dlq.PURGED}
    left = {e.id for e in store.iter("email")}
    states = fleet.wait_final(list(replayed.values()), timeout=120, dlq_counts=False)
    deadline = time.monotonic() + 30
    while (
        fleet.valkey.llen("email")
        or fleet.valkey.hlen("unacked:email")
        or fleet.valkey.zcard("taskfleet:scheduled:email")
    ):
        assert time.monotonic() < deadline, "the email queue did not drain"
        time.sleep(0.5)
    time.sleep(2.0)  # a second copy of anything would have shown up by now

    with fleet.smtp.lock:
        mails = Counter(to for _, _, to in fleet.smtp.messages)
    logs = "".join(p.log() for p in fleet.workers)
    # runs that completed (a rate-limit deferral re-publishes the same job and is received again: not a run)
    delivered = {e: logs.count(f"[{job}] succeeded") for e, job in replayed.items()}
    cut = sum(1 for a in answers if isinstance(a, Exception))
    conflicts = sum(1 for a in answers if isinstance(a, httpx.Response) and a.status_code == 409)

    report.submitted = len(address)
    report.succeeded = sum(1 for job in replayed.values() if states.get(job) == "SUCCESS")
    report.dead_lettered = len(left)
    report.missing = sum(1 for e in address if e not in replayed and e not in purged and e not in left)
    report.duplicated_effects = sum(n - 1 for n in mails.values() if n > 1) + sum(
        n - 1 for n in delivered.values() if n > 1
    )
    report.seconds = time.monotonic() - t0
    report.notes = (
        f"{len(requests)} concurrent requests, API SIGKILLed mid-way ({cut} cut); replayed {len(replayed)}, "
        f"purged {len(purged)}, 409 answers {conflicts}"
    )
    REPORTS.append(report)

    assert report.missing == 0 and report.duplicated_effects == 0 and not left, report
    assert set(permanent) <= set(replayed), report  # the last bulk replay took whatever the kill left
    assert len(replayed) + len(purged) == len(address) and not set(replayed) & purged
    assert all(mails[address[e]] == 1 and delivered[e] == 1 for e in replayed), report
    assert all(mails[address[e]] == 0 for e in purged), report
