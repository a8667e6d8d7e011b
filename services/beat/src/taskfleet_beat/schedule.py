"""Seed 000's Beat schedule, verbatim: thirteen entries, times in UTC.

Entries name a contract; its queue comes from the contract (not repeated here)
and its arguments are validated against the contract when the schedule is built,
so a bad entry fails Beat at start-up, not at 3 a.m.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery.schedules import crontab
from taskfleet_core.tasks.contracts import contract_for

from taskfleet_beat.settings import BeatSettings


@dataclass(frozen=True)
class Entry:
    name: str
    task: str
    schedule: crontab
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: How late a missed due time may still be sent (a CronJob's startingDeadlineSeconds); None: the default,
    #: half the period, at least min(period, 30 s), at most an hour (catchup.default_window). Older: missed.
    catch_up: timedelta | None = None


def entries(settings: BeatSettings) -> list[Entry]:
    hour = settings.sync_schedule_hour
    every = settings.pipeline_sync_interval_hours
    return [
        # Grant synchronization
        Entry(
            "daily-grant-sync",
            "scheduled.daily_grant_sync",
            crontab(minute=0, hour=hour),
            "Incremental sync from all enabled sources",
        ),
        Entry(
            "weekly-full-sync",
            "scheduled.weekly_full_sync",
            crontab(minute=0, hour=3, day_of_week="sun"),
            "Full sync with deduplication",
            catch_up=timedelta(hours=6),  # a week's full sync hours late beats waiting another week
        ),
        Entry(
            "sync-grants-periodic",
            "sync.sync_all_grant_sources",
            crontab(minute=0, hour=f"*/{every}"),
            "Legacy periodic sync",
        ),
        # Grant maintenance
        Entry(
            "daily-expired-cleanup",
            "scheduled.cleanup_expired_grants",
            crontab(minute=0, hour=4),
            "Mark expired grants as inactive",
        ),
        Entry(
            "weekly-reindex-search",
            "maintenance.reindex_search",
            crontab(minute=0, hour=5, day_of_week="sat"),
            "Rebuild the search index",
        ),
        # Matching
        Entry(
            "weekly-match-recalculation",
            "matching.refresh_all_matches",
            crontab(minute=30, hour=2, day_of_week="sat"),
            "Recalculate all match scores",
        ),
        Entry(
            "daily-match-refresh",
            "matching.refresh_all_matches",
            crontab(minute=30, hour=2),
            "Refresh matches for active companies",
            {"active_within_days": 7},
        ),
        # Notifications
        Entry(
            "hourly-deadline-check",
            "email.check_deadline_notifications",
            crontab(minute=0),
            "Check for approaching deadlines",
        ),
        Entry(
            "check-deadline-notifications-legacy",
            "email.check_deadline_notifications",
            crontab(minute=30),
            "Legacy notification check",
        ),
        # Maintenance
        Entry(
            "daily-session-cleanup",
            "maintenance.cleanup_old_sessions",
            crontab(minute=0, hour=3),
            "Remove expired sessions and tokens",
        ),
        Entry(
            "monthly-statistics",
            "maintenance.monthly_statistics",
            crontab(minute=0, hour=5, day_of_month=1),
            "Aggregate monthly statistics",
            catch_up=timedelta(hours=12),  # a month's aggregate is as right at noon; missing it costs a month
        ),
        Entry(
            "weekly-database-vacuum",
            "maintenance.vacuum_database",
            crontab(minute=0, hour=6, day_of_week="sun"),
            "Run ANALYZE on database",
        ),
        Entry("health-check", "maintenance.health_check", crontab(minute="*/5"), "Verify all services are running"),
    ]


def catch_up_windows(settings: BeatSettings) -> dict[str, float]:
    """Catch-up windows (seconds) of the entries that set one; the others use the default for their period."""
    if not settings.celery_beat_schedule_enabled:
        return {}
    return {e.name: e.catch_up.total_seconds() for e in entries(settings) if e.catch_up is not None}


def beat_schedule(settings: BeatSettings) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``; empty when ``CELERY_BEAT_SCHEDULE_ENABLED`` is false."""
    if not settings.celery_beat_schedule_enabled:
        return {}
    schedule: dict[str, dict[str, Any]] = {}
    for entry in entries(settings):
        contract = contract_for(entry.task)
        contract.validate((), entry.kwargs)  # fail at start-up, not at run time
        schedule[entry.name] = {
            "task": entry.task,
            "schedule": entry.schedule,
            "kwargs": entry.kwargs,
            "options": {"queue": contract.queue},
        }
    return schedule
