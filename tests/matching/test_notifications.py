"""Deadline alerts through real workers and the real SMTP server, on SQLite and PostgreSQL:
one email per (user, grant, window) across two concurrent runs, a retry and a redelivery."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from taskfleet_api.producer import celery_app
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_data.accounts import MatchResult, NotificationLog
from taskfleet_data.db import session_for
from taskfleet_worker_email.notifications import window_for

from tests.integration.helpers import wait_for_job
from tests.matching.fixtures import GRANTS, add_user, seed_world

BASE = GRANTS["storage"]
ALERT_GRANTS = {
    "in_10_days": {**BASE, "title": "Storage call closing in 10 days", "days": 10},
    "in_5_days": {**BASE, "title": "Storage call closing in 5 days", "days": 5},
    "in_12_hours": {**BASE, "title": "Storage call closing tonight", "days": 0.5},
    "in_30_days": {**BASE, "title": "Storage call closing next month", "days": 30},
    "in_3_days": {**BASE, "title": "Storage call closing in 3 days", "days": 3},
    "in_2_days": {**BASE, "title": "Storage call closing in 2 days", "days": 2},
}


def test_window_is_the_smallest_one_the_deadline_falls_in() -> None:
    assert window_for(10, [14, 7, 1]) == 14
    assert window_for(5, [14, 7, 1]) == 7
    assert window_for(0.5, [14, 7, 1]) == 1
    assert window_for(30, [14, 7, 1]) is None


async def _add_matches(url: str, company_id: int, grant_ids: list[int]) -> None:
    async with session_for(url) as session, session.begin():
        for rank, grant_id in enumerate(grant_ids, start=1):
            session.add(
                MatchResult(
                    company_id=company_id,
                    grant_id=grant_id,
                    rank=rank,
                    score=0.8 - rank / 100,
                    reasons=["Strong topic similarity (0.80)", "Sector match: energy"],
                    components={},
                    computed_at=datetime.now(UTC),
                )
            )


async def _log(url: str) -> list[NotificationLog]:
    async with session_for(url) as session:
        return list((await session.scalars(select(NotificationLog).order_by(NotificationLog.id))).all())


def wait_sent(fleet, timeout: float = 30) -> list[NotificationLog]:
    """Every alert handed on, and every send_email job it became finished."""
    backend = celery_app().backend
    deadline = time.monotonic() + timeout
    while True:
        rows = run_async(lambda: _log(fleet.database_url))
        states = [backend.get_task_meta(r.email_job_id)["status"] if r.email_job_id else None for r in rows]
        if rows and all(s == "SUCCESS" for s in states):
            return rows
        assert time.monotonic() < deadline, list(zip([r.status for r in rows], states, strict=True))
        time.sleep(0.2)


def test_each_alert_is_emailed_exactly_once(fleet, smtp_server) -> None:
    tag = f"{fleet.backend}-alerts"
    world = run_async(lambda: seed_world(fleet.database_url, tag, grants=ALERT_GRANTS))
    g = world.grants
    company = world.companies["nordwind"]
    run_async(lambda: _add_matches(fleet.database_url, company, [g[k] for k in ALERT_GRANTS if k != "in_3_days"]))
    users = {
        "alice": {},  # default windows 14, 7, 1
        "bob": {"alert_windows_days": [7]},
        "carol": {"notify_deadlines": False},
        "dave": {"min_alert_score": 0.99},
    }
    address = {name: f"{name}-{tag}@example.com" for name in users}
    for name, extra in users.items():
        run_async(lambda name=name, extra=extra: add_user(fleet.database_url, company, address[name], **extra))
    fleet.workers.ensure("email")

    # two concurrent runs (the hourly and the legacy entry at once): queued while the worker does not consume
    control = celery_app().control
    assert control.cancel_consumer("email", reply=True, limit=1, timeout=5)
    first = fleet.submit("email.check_deadline_notifications")
    second = fleet.submit("email.check_deadline_notifications")
    assert control.add_consumer("email", reply=True, limit=1, timeout=5)
    one, two = wait_for_job(fleet.api, first), wait_for_job(fleet.api, second)
    assert one["state"] == two["state"] == "SUCCESS", (one, two)
    # alice: 10 days (window 14), 5 and 2 days (7), 12 hours (1); bob, whose only window is 7: 5 and 2 days, 12 hours
    assert one["result"]["due"] == two["result"]["due"] == 7
    assert one["result"]["dispatched"] + two["result"]["dispatched"] == 7

    # a retry of the first run (Celery re-sends the message: same id, retries + 1) finds everything handled
    # (the result backend keeps the first SUCCESS of an id, so the second run is read from the worker's log)
    celery_app().send_task("email.check_deadline_notifications", kwargs={}, task_id=first, retries=1)
    done = f"Task email.check_deadline_notifications[{first}] succeeded"
    worker = fleet.workers.started["email"]
    deadline = time.monotonic() + 30
    while worker.log().count(done) < 2:
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.1)
    rerun = worker.log().split(done)[2].splitlines()[0]
    assert "'dispatched': 0, 'already_handled': 7" in rerun, rerun

    # a run that died after claiming a new alert (3 days, for alice and bob) and before handing it on ...
    run_async(lambda: _add_matches(fleet.database_url, company, [g["in_3_days"]]))
    crashed = "crashed-run-" + tag
    alice, bob = sorted({r.user_id for r in run_async(lambda: _log(fleet.database_url))})
    run_async(lambda: _claim(fleet.database_url, alice, g["in_3_days"], crashed, minutes_ago=1))
    run_async(lambda: _claim(fleet.database_url, bob, g["in_3_days"], "ghost-" + tag, minutes_ago=60))
    # ... is redelivered (same message, same id): it dispatches its own claim; the hour-old one is stale, taken over
    celery_app().send_task("email.check_deadline_notifications", kwargs={}, task_id=crashed)
    redelivered = wait_for_job_meta(crashed)
    assert redelivered["dispatched"] == 2 and redelivered["already_handled"] == 7

    rows = wait_sent(fleet)
    assert len(rows) == 9 and {r.status for r in rows} == {"dispatched"}
    assert len({(r.user_id, r.grant_id, r.window_days) for r in rows}) == 9
    time.sleep(0.5)  # nothing else is on its way: every send_email job finished above
    received = {name: smtp_server.handler.to(addr) for name, addr in address.items()}
    subjects = {name: sorted(m["Subject"] for m in msgs) for name, msgs in received.items()}
    assert len(received["alice"]) == 5, subjects["alice"]
    assert len(received["bob"]) == 4, subjects["bob"]
    assert received["carol"] == [] and received["dave"] == []
    assert len(set(subjects["alice"])) == 5  # five different alerts, no copies
    message = next(m for m in received["alice"] if "tonight" in m["Subject"])
    assert message["Subject"].startswith("Deadline in 12 hours:") or message["Subject"].startswith(
        "Deadline in 11 hours"
    )
    assert "Sector match: energy" in message.get_body(("plain",)).get_content()
    assert "<li>Sector match: energy</li>" in message.get_body(("html",)).get_content()


async def _claim(url: str, user_id: int, grant_id: int, job_id: str, minutes_ago: int) -> None:
    async with session_for(url) as session, session.begin():
        session.add(
            NotificationLog(
                user_id=user_id,
                grant_id=grant_id,
                window_days=7,
                status="claimed",
                idempotency_key=f"test-claim:{job_id}:{user_id}:{grant_id}",
                claimed_by=job_id,
                claimed_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
            )
        )


def wait_for_job_meta(task_id: str, timeout: float = 30) -> dict:
    backend = celery_app().backend
    deadline = time.monotonic() + timeout
    while (meta := backend.get_task_meta(task_id))["status"] != "SUCCESS":
        assert meta["status"] != "FAILURE", meta
        assert time.monotonic() < deadline, meta
        time.sleep(0.1)
    return meta["result"]
