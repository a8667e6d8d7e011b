"""Beat's schedule against seed 000's table, entry by entry: name, time (UTC), queue, task.

The expected side is seed 000's table as data (tests/data/seed000.json, refreshed from the seed by
scripts/vendor-reference), so the two cannot drift.
"""

import re

import pytest
from celery.schedules import crontab
from taskfleet_beat.schedule import beat_schedule, entries
from taskfleet_beat.settings import BeatSettings
from taskfleet_core.tasks.contracts import contract_for

from tests.support.reference import seed000

DAYS = {"Sunday": "0", "Monday": "1", "Tuesday": "2", "Wednesday": "3", "Thursday": "4", "Friday": "5", "Saturday": "6"}

# The task each seed entry runs (the seed's table names the entry and describes it; its module tables
# name the task). Ours are wire names of contracts.
SEED_TASKS = {
    "daily-grant-sync": "scheduled.daily_grant_sync",
    "weekly-full-sync": "scheduled.weekly_full_sync",
    "sync-grants-periodic": "sync.sync_all_grant_sources",
    "daily-expired-cleanup": "scheduled.cleanup_expired_grants",
    "weekly-reindex-search": "maintenance.reindex_search",
    "weekly-match-recalculation": "matching.refresh_all_matches",
    "daily-match-refresh": "matching.refresh_all_matches",
    "hourly-deadline-check": "email.check_deadline_notifications",
    "check-deadline-notifications-legacy": "email.check_deadline_notifications",
    "daily-session-cleanup": "maintenance.cleanup_old_sessions",
    "monthly-statistics": "maintenance.monthly_statistics",
    "weekly-database-vacuum": "maintenance.vacuum_database",
    "health-check": "maintenance.health_check",
}


def seed_rows() -> list[tuple[str, str, str]]:
    return [(row["name"], row["schedule"], row["queue"]) for row in seed000()["beat_schedule"]]


def crontab_for(phrase: str) -> crontab:
    """Seed 000's English schedule phrases as crontabs (UTC)."""
    if m := re.fullmatch(r"Every (\d+) minutes", phrase):
        return crontab(minute=f"*/{m[1]}")
    if m := re.fullmatch(r"Every (\d+) hours", phrase):
        return crontab(minute=0, hour=f"*/{m[1]}")
    if m := re.fullmatch(r"Every hour at :(\d\d)", phrase):
        return crontab(minute=int(m[1]))
    m = re.fullmatch(r"(Daily|\w+day|1st of month) (\d+):(\d\d) AM UTC", phrase)
    assert m, f"unparsed seed schedule {phrase!r}"
    when, hour, minute = m[1], int(m[2]), int(m[3])
    if when == "Daily":
        return crontab(minute=minute, hour=hour)
    if when == "1st of month":
        return crontab(minute=minute, hour=hour, day_of_month=1)
    return crontab(minute=minute, hour=hour, day_of_week=DAYS[when])


def same_time(a: crontab, b: crontab) -> bool:
    return (a.minute, a.hour, a.day_of_week, a.day_of_month, a.month_of_year) == (
        b.minute,
        b.hour,
        b.day_of_week,
        b.day_of_month,
        b.month_of_year,
    )


def test_seed_table_has_thirteen_entries() -> None:
    assert len(seed_rows()) == 13


@pytest.mark.parametrize(("name", "phrase", "queue"), seed_rows())
def test_entry_matches_seed(name: str, phrase: str, queue: str) -> None:
    schedule = beat_schedule(BeatSettings())
    assert name in schedule, f"{name} missing from the schedule"
    entry = schedule[name]
    assert entry["task"] == SEED_TASKS[name]
    assert contract_for(entry["task"]).queue == queue
    assert entry["options"]["queue"] == queue
    assert same_time(entry["schedule"], crontab_for(phrase)), f"{name}: {entry['schedule']} vs {phrase!r}"


def test_no_entries_beyond_the_seed() -> None:
    assert set(beat_schedule(BeatSettings())) == {row[0] for row in seed_rows()}


def test_env_toggles() -> None:
    assert beat_schedule(BeatSettings(celery_beat_schedule_enabled=False)) == {}
    moved = beat_schedule(BeatSettings(sync_schedule_hour=5, pipeline_sync_interval_hours=4))
    assert same_time(moved["daily-grant-sync"]["schedule"], crontab(minute=0, hour=5))
    assert same_time(moved["sync-grants-periodic"]["schedule"], crontab(minute=0, hour="*/4"))


def test_every_entry_validates_against_its_contract() -> None:
    for entry in entries(BeatSettings()):
        contract_for(entry.task).validate((), entry.kwargs)
