"""``maintenance.monthly_statistics``: one stored row per month, computed once.

For the previous month unless told otherwise: new grants by source and status (plus the
current totals), match results computed, companies matched, alerts sent by window, companies
and users created. The row is unique on (year, month): a second run -- retry, redelivery, a
manual re-run -- returns the stored figures instead of computing different ones later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from taskfleet_core.settings import load
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_core.tasks.contracts import MonthlyStatisticsArgs
from taskfleet_core.tasks.fleet_task import FleetTask, implements
from taskfleet_data.accounts import Company, MatchResult, MonthlyStatistics, NotificationLog, User
from taskfleet_data.db import database
from taskfleet_data.models import Grant
from taskfleet_data.settings import DataSettings


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_month(now: datetime) -> tuple[int, int]:
    return (now.year - 1, 12) if now.month == 1 else (now.year, now.month - 1)


def _nested(rows: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for source, status, count in rows:
        out.setdefault(source, {})[status] = count
    return out


async def compute(session: AsyncSession, start: datetime, end: datetime) -> dict[str, Any]:
    by_source_status = select(Grant.source, Grant.status, func.count()).group_by(Grant.source, Grant.status)
    in_month = by_source_status.where(Grant.first_seen_at >= start, Grant.first_seen_at < end)
    matches = await session.execute(
        select(func.count(), func.count(distinct(MatchResult.company_id))).where(
            MatchResult.computed_at >= start, MatchResult.computed_at < end
        )
    )
    match_count, companies_matched = matches.one()
    alerts = await session.execute(
        select(NotificationLog.window_days, func.count())
        .where(NotificationLog.dispatched_at >= start, NotificationLog.dispatched_at < end)
        .group_by(NotificationLog.window_days)
    )
    alerts_by_window = {str(window): count for window, count in alerts}

    async def created(model: type[Company] | type[User]) -> int:
        count = await session.scalar(
            select(func.count()).select_from(model).where(model.created_at >= start, model.created_at < end)
        )
        return count or 0

    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "grants_new_by_source_status": _nested(await session.execute(in_month)),
        "grants_total_by_source_status": _nested(await session.execute(by_source_status)),
        "matches_computed": match_count,
        "companies_matched": companies_matched,
        "notifications_sent": sum(alerts_by_window.values()),
        "notifications_by_window_days": alerts_by_window,
        "companies_created": await created(Company),
        "users_created": await created(User),
    }


async def statistics_for(url: str, year: int, month: int, job_id: str | None) -> dict[str, Any]:
    async with database(url) as sessions:
        async with sessions() as session:
            stored = await session.scalar(
                select(MonthlyStatistics).where(MonthlyStatistics.year == year, MonthlyStatistics.month == month)
            )
            if stored is not None:
                return _report(stored, already_computed=True)
            data = await compute(session, *month_bounds(year, month))
        async with sessions() as session, session.begin():
            insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            await session.execute(
                insert(MonthlyStatistics)
                .values(year=year, month=month, data=data, computed_at=datetime.now(UTC), job_id=job_id)
                .on_conflict_do_nothing()
            )
        async with sessions() as session:  # ours, or the one a concurrent run stored first
            stored = (
                await session.scalars(
                    select(MonthlyStatistics).where(MonthlyStatistics.year == year, MonthlyStatistics.month == month)
                )
            ).one()
            return _report(stored, already_computed=stored.job_id != job_id)


def _report(row: MonthlyStatistics, *, already_computed: bool) -> dict[str, Any]:
    return {
        "year": row.year,
        "month": row.month,
        "already_computed": already_computed,
        "computed_at": row.computed_at.isoformat(),
        "job_id": row.job_id,
        "statistics": row.data,
    }


@implements("maintenance.monthly_statistics")
def monthly_statistics(task: FleetTask, args: MonthlyStatisticsArgs) -> dict[str, Any]:
    if args.year is not None and args.month is not None:
        year, month = args.year, args.month
    else:
        year, month = previous_month(datetime.now(UTC))
    job_id = task.request.id or "eager"
    return run_async(lambda: statistics_for(load(DataSettings).database_url, year, month, job_id))
