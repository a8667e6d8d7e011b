"""Maintenance tasks on the default queue with a real worker, on SQLite and PostgreSQL:
statistics computed once, sessions cleaned, ANALYZE under an overlap lock, sync freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from taskfleet_api.producer import celery_app
from taskfleet_core.reliability.locks import OverlapLock
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_data.accounts import (
    AuthToken,
    MatchResult,
    MonthlyStatistics,
    NotificationLog,
    User,
    UserSession,
)
from taskfleet_data.db import session_for
from taskfleet_data.models import Grant, SyncState
from taskfleet_worker_default.statistics import month_bounds, previous_month

from tests.integration.helpers import wait_for_job
from tests.matching.fixtures import seed_world

OCTOBER = datetime(2026, 10, 15, tzinfo=UTC)


def test_month_arithmetic() -> None:
    assert previous_month(datetime(2027, 1, 3, tzinfo=UTC)) == (2026, 12)
    assert month_bounds(2026, 12) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def world(fleet):
    fleet.workers.ensure("default")
    world = run_async(lambda: seed_world(fleet.database_url, f"{fleet.backend}-maint"))
    run_async(lambda: _backdate(fleet.database_url, world))
    return world


async def _backdate(url: str, world) -> None:
    """Three grants first seen in October (one closed), two matches and one alert that month."""
    g, c = world.grants, world.companies
    async with session_for(url) as session, session.begin():
        await session.execute(
            update(Grant).where(Grant.id.in_([g["wind"], g["storage"], g["wind_closed"]])).values(first_seen_at=OCTOBER)
        )
        user = User(
            email=f"stats-{world.companies['nordwind']}@example.com", company_id=c["nordwind"], created_at=OCTOBER
        )
        session.add(user)
        for rank, key in enumerate(["wind", "storage"], start=1):
            session.add(
                MatchResult(
                    company_id=c["nordwind"],
                    grant_id=g[key],
                    rank=rank,
                    score=0.5,
                    reasons=[],
                    components={},
                    computed_at=OCTOBER,
                )
            )
        await session.flush()
        session.add(
            NotificationLog(
                user_id=user.id,
                grant_id=g["wind"],
                window_days=7,
                status="dispatched",
                idempotency_key="stats-1",
                claimed_at=OCTOBER,
                dispatched_at=OCTOBER,
            )
        )


def test_statistics_for_a_month_are_computed_once(fleet, world) -> None:
    control = celery_app().control
    assert control.cancel_consumer("default", reply=True, limit=1, timeout=5)
    jobs = [fleet.submit("maintenance.monthly_statistics", year=2026, month=10) for _ in range(2)]
    assert control.add_consumer("default", reply=True, limit=1, timeout=5)
    results = [wait_for_job(fleet.api, job)["result"] for job in jobs]
    assert sorted(r["already_computed"] for r in results) == [False, True]
    assert results[0]["statistics"] == results[1]["statistics"]

    again = wait_for_job(fleet.api, fleet.submit("maintenance.monthly_statistics", year=2026, month=10))["result"]
    assert again["already_computed"] is True and again["computed_at"] == results[0]["computed_at"]

    stats = again["statistics"]
    assert stats["grants_new_by_source_status"] == {"cordis": {"open": 2, "closed": 1}}
    assert stats["matches_computed"] == 2 and stats["companies_matched"] == 1
    assert stats["notifications_sent"] == 1 and stats["notifications_by_window_days"] == {"7": 1}
    assert stats["users_created"] == 1 and stats["companies_created"] == 0

    async def rows():
        async with session_for(fleet.database_url) as session:
            return await session.scalar(select(func.count()).select_from(MonthlyStatistics))

    assert run_async(rows) == 1

    default = wait_for_job(fleet.api, fleet.submit("maintenance.monthly_statistics"))["result"]
    assert (default["year"], default["month"]) == previous_month(datetime.now(UTC))


def test_expired_sessions_and_tokens_are_removed(fleet, world) -> None:
    now = datetime.now(UTC)

    async def seed():
        async with session_for(fleet.database_url) as session, session.begin():
            user = User(email=f"sessions-{fleet.backend}@example.com", company_id=world.companies["shamba"])
            session.add(user)
            await session.flush()
            for i, delta in enumerate([-2, -1, 1]):
                session.add(
                    UserSession(
                        user_id=user.id, token_hash=f"s{i}-{fleet.backend}", expires_at=now + timedelta(days=delta)
                    )
                )
            session.add(
                AuthToken(
                    user_id=user.id,
                    kind="password_reset",
                    token_hash=f"t0-{fleet.backend}",
                    expires_at=now - timedelta(hours=1),
                )
            )
            session.add(
                AuthToken(
                    user_id=user.id,
                    kind="api",
                    token_hash=f"t1-{fleet.backend}",
                    expires_at=now + timedelta(days=30),
                    revoked_at=now - timedelta(days=8),
                )
            )
            session.add(
                AuthToken(
                    user_id=user.id, kind="api", token_hash=f"t2-{fleet.backend}", expires_at=now + timedelta(days=30)
                )
            )

    run_async(seed)
    first = wait_for_job(fleet.api, fleet.submit("maintenance.cleanup_old_sessions"))["result"]
    assert (first["sessions_deleted"], first["tokens_deleted"]) == (2, 2)
    second = wait_for_job(fleet.api, fleet.submit("maintenance.cleanup_old_sessions"))["result"]
    assert (second["sessions_deleted"], second["tokens_deleted"]) == (0, 0)


def test_vacuum_runs_analyze_and_skips_while_another_run_holds_the_lock(fleet, world) -> None:
    done = wait_for_job(fleet.api, fleet.submit("maintenance.vacuum_database"))
    assert done["state"] == "SUCCESS" and done["result"]["skipped"] is False
    assert done["result"]["dialect"] == fleet.backend and done["result"]["statements"][0] == "ANALYZE"

    holder = OverlapLock(fleet.redis, "maintenance.vacuum_database", 60)
    assert holder.acquire()
    try:
        skipped = wait_for_job(fleet.api, fleet.submit("maintenance.vacuum_database"))["result"]
        assert (
            skipped["skipped"] is True and "another run holds lock 'maintenance.vacuum_database'" in skipped["reason"]
        )
    finally:
        holder.release()
    assert wait_for_job(fleet.api, fleet.submit("maintenance.vacuum_database"))["result"]["skipped"] is False


def test_health_check_reports_sync_freshness_per_source(fleet, world) -> None:
    now = datetime.now(UTC)

    async def seed():
        async with session_for(fleet.database_url) as session, session.begin():
            session.add(
                SyncState(source="cordis", last_run_at=now, last_success_at=now - timedelta(hours=1), last_status="ok")
            )
            session.add(
                SyncState(source="iati", last_run_at=now, last_success_at=now - timedelta(days=3), last_status="error")
            )

    run_async(seed)
    report = wait_for_job(fleet.api, fleet.submit("maintenance.health_check"))["result"]
    freshness = report["freshness"]["detail"]
    assert report["status"] == "degraded" and freshness["stale_sources"] == ["iati"]
    assert freshness["sources"]["cordis"]["stale"] is False and freshness["sources"]["cordis"]["age_hours"] == 1.0
    assert freshness["sources"]["gcf"] == {"last_success_at": None, "stale": None, "note": "never synced"}
