"""``email.check_deadline_notifications``: one alert per (user, grant, window), exactly once.

A user's matched grant whose deadline is ``d`` days away falls in the smallest of the user's
windows ``w`` with ``d <= w`` (defaults 14, 7, 1): a grant first seen 5 days before its
deadline gets the 7-day alert, and later the 1-day one.

Exactly once, even when this task is retried, redelivered, or the hourly and legacy schedule
entries run at the same time:

1. **claim**: ``INSERT .. ON CONFLICT DO NOTHING`` into ``notification_log``, unique on
   (user, grant, window). Of any number of concurrent runs, one inserts the row; the others
   see nothing inserted and move on.
2. **dispatch**: the claimant hands the rendered email to ``email.send_email`` with an
   idempotency key derived from the row, then marks the row ``dispatched``.

A run that dies between 1 and 2 leaves a ``claimed`` row. The same job (retried -- a failed
hand-over to the broker is a ``TransientError`` -- or redelivered) takes it up again at once;
any other run takes it over once it is older than ``STALE_CLAIM``. Dispatching twice is
harmless: ``send_email`` sends a key once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from taskfleet_core.settings import load
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_core.tasks.contracts import DeadlineCheckArgs
from taskfleet_core.tasks.errors import TransientError
from taskfleet_core.tasks.fleet_task import FleetTask, implements
from taskfleet_data.accounts import Company, MatchResult, NotificationLog, User
from taskfleet_data.db import database
from taskfleet_data.models import Grant
from taskfleet_data.settings import DataSettings

from taskfleet_worker_email.templates import render_deadline_email

log = logging.getLogger(__name__)

#: A claim older than this whose email was never handed on is taken over by the next run.
STALE_CLAIM = timedelta(minutes=15)
#: No window reaches further than this.
MAX_WINDOW_DAYS = 366


@dataclass(frozen=True)
class Alert:
    user_id: int
    email: str
    user_name: str | None
    company_name: str
    grant_id: int
    title: str
    url: str | None
    deadline: datetime
    window_days: int
    score: float
    reasons: list[str]

    @property
    def key(self) -> str:
        return f"deadline:{self.user_id}:{self.grant_id}:{self.window_days}:{self.deadline:%Y%m%d%H%M}"


def window_for(days_left: float, windows: list[int]) -> int | None:
    """The smallest window the deadline falls in, or None when it is further away than all of them."""
    inside = [w for w in windows if days_left <= w]
    return min(inside) if inside else None


async def due_alerts(session: AsyncSession, now: datetime, default_windows: list[int]) -> list[Alert]:
    rows = await session.execute(
        select(
            User.id,
            User.email,
            User.name,
            User.alert_windows_days,
            Company.name.label("company_name"),
            MatchResult.score,
            MatchResult.reasons,
            Grant.id.label("grant_id"),
            Grant.title,
            Grant.url,
            Grant.deadline,
        )
        .join(Company, Company.id == User.company_id)
        .join(MatchResult, MatchResult.company_id == Company.id)
        .join(Grant, Grant.id == MatchResult.grant_id)
        .where(
            User.notify_deadlines.is_(True),
            Company.active.is_(True),
            Grant.is_active.is_(True),
            Grant.duplicate_of_id.is_(None),
            Grant.deadline > now,
            Grant.deadline <= now + timedelta(days=MAX_WINDOW_DAYS),
            MatchResult.score >= User.min_alert_score,
        )
        .order_by(User.id, Grant.deadline)
    )
    alerts = []
    for r in rows:
        days_left = (r.deadline - now).total_seconds() / 86400
        window = window_for(days_left, list(r.alert_windows_days or default_windows))
        if window is None:
            continue
        alerts.append(
            Alert(
                r.id,
                r.email,
                r.name,
                r.company_name,
                r.grant_id,
                r.title,
                r.url,
                r.deadline,
                window,
                r.score,
                r.reasons,
            )
        )
    return alerts


def _insert(session: AsyncSession) -> Callable[[type[NotificationLog]], PgInsert | SqliteInsert]:
    """The dialect's INSERT, which has ``ON CONFLICT DO NOTHING`` on both backends."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def claim(session: AsyncSession, alert: Alert, job_id: str, now: datetime) -> int | None:
    """The log row's id when this run owns the alert (new claim, its own or a stale one), else None."""
    new_claim = (
        _insert(session)(NotificationLog)
        .values(
            user_id=alert.user_id,
            grant_id=alert.grant_id,
            window_days=alert.window_days,
            kind="deadline",
            status="claimed",
            idempotency_key=alert.key,
            claimed_by=job_id,
            claimed_at=now,
        )
        .on_conflict_do_nothing()
        .returning(NotificationLog.id)
    )
    inserted = await session.scalar(new_claim)
    if inserted is not None:
        return inserted
    # Already claimed: take it over only if the email was never handed on, and the claim is ours or stale.
    taken = await session.scalar(
        update(NotificationLog)
        .where(
            NotificationLog.user_id == alert.user_id,
            NotificationLog.grant_id == alert.grant_id,
            NotificationLog.window_days == alert.window_days,
            NotificationLog.status == "claimed",
            or_(NotificationLog.claimed_by == job_id, NotificationLog.claimed_at < now - STALE_CLAIM),
        )
        .values(claimed_by=job_id, claimed_at=now)
        .returning(NotificationLog.id)
    )
    return taken


def email_kwargs(alert: Alert, now: datetime, log_id: int) -> dict[str, Any]:
    subject, text, html = render_deadline_email(
        user_name=alert.user_name,
        company_name=alert.company_name,
        grant={"id": alert.grant_id, "title": alert.title, "url": alert.url},
        deadline=alert.deadline,
        now=now,
        window_days=alert.window_days,
        score=alert.score,
        reasons=alert.reasons,
    )
    return {
        "to": [alert.email],
        "subject": subject,
        "text": text,
        "html": html,
        "idempotency_key": f"{alert.key}:{log_id}",
    }


async def _check(task: FleetTask, windows: list[int], job_id: str) -> dict[str, Any]:
    url = load(DataSettings).database_url
    now = datetime.now(UTC)
    async with database(url) as sessions:
        async with sessions() as session:
            alerts = await due_alerts(session, now, windows)
        owned: list[tuple[Alert, int]] = []
        for alert in alerts:
            async with sessions() as session, session.begin():  # one short transaction per claim
                log_id = await claim(session, alert, job_id, now)
            if log_id is not None:
                owned.append((alert, log_id))
        for done, (alert, log_id) in enumerate(owned):
            task.report_progress(done, len(owned), "dispatching alerts")
            try:
                sent = task.app.send_task("email.send_email", kwargs=email_kwargs(alert, now, log_id))
            except Exception as exc:  # broker unreachable: the retry (same job id) takes its claims up again
                raise TransientError(f"could not hand alert {log_id} to email.send_email: {exc}") from exc
            async with sessions() as session, session.begin():
                await session.execute(
                    update(NotificationLog)
                    .where(and_(NotificationLog.id == log_id, NotificationLog.status == "claimed"))
                    .values(status="dispatched", email_job_id=sent.id, dispatched_at=datetime.now(UTC))
                )
    log.info("deadline check: %d alerts due, %d dispatched by this run", len(alerts), len(owned))
    return {
        "due": len(alerts),
        "dispatched": len(owned),
        "already_handled": len(alerts) - len(owned),
        # the job's windows apply only to users without their own (alert_windows_days); what was applied is
        # counted per window of the due alerts
        "default_windows_days": windows,
        "due_by_window": {str(w): n for w, n in sorted(Counter(a.window_days for a in alerts).items())},
    }


@implements("email.check_deadline_notifications")
def check_deadline_notifications(task: FleetTask, args: DeadlineCheckArgs) -> dict[str, Any]:
    job_id = task.request.id or "eager"
    windows = sorted(set(args.windows_days))
    return run_async(lambda: _check(task, windows, job_id))
