"""Beat's catch-up decision (taskfleet_beat/catchup.py) for crontab and interval entries, in UTC (no DST)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from celery.schedules import crontab, schedule
from taskfleet_beat import catchup
from taskfleet_beat.catchup import decide, default_window, next_due_after
from taskfleet_beat.schedule import catch_up_windows, entries
from taskfleet_beat.settings import BeatSettings


def at(hour: int, minute: int = 0, second: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)  # 2026-03-02 is a Monday


S = timedelta(seconds=1)
FIVE = crontab(minute="*/5")


def test_next_due_after_is_strictly_after() -> None:
    assert next_due_after(FIVE, at(12, 5)) == at(12, 10)
    assert next_due_after(FIVE, at(12, 4, 59)) == at(12, 5)
    assert next_due_after(crontab(minute=0, hour=3, day_of_week="sun"), at(3, day=1)) == at(3, day=8)
    assert next_due_after(crontab(minute=0, hour=5, day_of_month=1), at(5, day=1)) == datetime(
        2026, 4, 1, 5, tzinfo=UTC
    )
    assert next_due_after(schedule(timedelta(seconds=30)), at(12)) == at(12, 0, 30)


@pytest.mark.parametrize(
    ("period", "window"),
    [
        (timedelta(seconds=0.5), timedelta(seconds=0.5)),  # a whole short period: lateness is never a miss
        (timedelta(seconds=40), timedelta(seconds=30)),  # the 30 s floor
        (timedelta(minutes=5), timedelta(seconds=150)),  # half the period
        (timedelta(hours=1), timedelta(minutes=30)),
        (timedelta(days=1), timedelta(hours=1)),  # the cap
        (timedelta(weeks=1), timedelta(hours=1)),
    ],
)
def test_default_window(period: timedelta, window: timedelta) -> None:
    assert default_window(period) == window


def test_crontab_not_due_waits_for_the_next_due_time() -> None:
    d = decide(FIVE, at(12, 5), at(12, 9, 59))
    assert (d.action, d.due, d.next_due, d.missed) == ("wait", None, at(12, 10), 0)


def test_crontab_due_on_time_is_sent() -> None:
    d = decide(FIVE, at(12, 5), at(12, 10) + 0.2 * S)
    assert (d.action, d.due, d.next_due, d.missed) == ("send", at(12, 10), at(12, 15), 0)


def test_crontab_due_in_a_takeover_gap_is_sent_late_within_its_window() -> None:
    # The leader died at 12:09:40; the standby took over 60 s later (the lock TTL): 40 s late, window 150 s.
    d = decide(FIVE, at(12, 5), at(12, 10, 40))
    assert (d.action, d.due, d.next_due, d.missed, d.window) == ("send", at(12, 10), at(12, 15), 0, 150 * S)


def test_crontab_at_the_window_edge() -> None:
    assert decide(FIVE, at(12, 5), at(12, 12, 30)).action == "send"
    d = decide(FIVE, at(12, 5), at(12, 12, 31))
    assert (d.action, d.due, d.next_due, d.missed) == ("missed", at(12, 10), at(12, 15), 1)


def test_crontab_outage_sends_the_latest_and_counts_the_older_ones() -> None:
    # Down from 12:05 to 12:31: 12:10, 12:15, 12:20, 12:25 are older than 150 s, 12:30 is sent once.
    d = decide(FIVE, at(12, 5), at(12, 31))
    assert (d.action, d.due, d.next_due, d.missed) == ("send", at(12, 30), at(12, 35), 4)


def test_crontab_daily_entry_late_by_more_than_an_hour_is_missed() -> None:
    daily = crontab(minute=0, hour=2)
    assert decide(daily, at(2, day=1), at(2, 59)).action == "send"
    d = decide(daily, at(2, day=1), at(3, 1))
    assert (d.action, d.due, d.next_due, d.missed, d.window) == ("missed", at(2), at(2, day=3), 1, timedelta(hours=1))


def test_configured_window_overrides_the_default() -> None:
    monthly = crontab(minute=0, hour=5, day_of_month=1)
    last = datetime(2026, 2, 1, 5, tzinfo=UTC)
    now = datetime(2026, 3, 1, 11, tzinfo=UTC)  # six hours late
    assert decide(monthly, last, now).action == "missed"
    assert decide(monthly, last, now, timedelta(hours=12)).action == "send"


def test_a_very_long_outage_is_counted_without_walking_every_due_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catchup, "COUNT_LIMIT", 50)
    d = decide(FIVE, at(12, day=1), at(12, 1, day=9))  # 8 days of */5: 2304 due times
    assert d.action == "send" and d.due == at(12, day=9)
    assert 50 <= d.missed <= 2303


def test_interval_due_on_time_and_late() -> None:
    every = schedule(timedelta(minutes=5))
    assert decide(every, at(12), at(12, 4, 59)).action == "wait"
    d = decide(every, at(12), at(12, 6))
    assert (d.action, d.due, d.next_due, d.missed) == ("send", at(12, 5), at(12, 10), 0)


def test_interval_keeps_its_cadence_and_counts_what_is_too_old() -> None:
    every = schedule(timedelta(minutes=5))
    d = decide(every, at(12), at(12, 22))  # due 12:05 12:10 12:15 (older than 150 s) and 12:20 (sent)
    assert (d.action, d.due, d.next_due, d.missed) == ("send", at(12, 20), at(12, 25), 3)
    d = decide(every, at(12), at(12, 23))  # 12:20 is 180 s old: everything missed, the cadence kept
    assert (d.action, d.due, d.next_due, d.missed) == ("missed", at(12, 20), at(12, 25), 4)


def test_short_interval_never_misses_while_ticking() -> None:
    every = schedule(timedelta(seconds=0.5))
    d = decide(every, at(12), at(12) + 1.4 * S)
    assert (d.action, d.due, d.missed) == ("send", at(12) + 1 * S, 1)


def test_record_round_trip() -> None:
    record = catchup.Record(at(12).timestamp(), at(12, 0, 1).timestamp(), "sent", "host:1:ab")
    assert catchup.Record.decode(record.encode()) == record
    assert record.due_at == at(12)


def test_seed_entries_have_windows_covering_a_takeover() -> None:
    """Every seed entry may be sent at least a lock TTL (60 s) late: a takeover never misses it."""
    settings = BeatSettings()
    windows = catch_up_windows(settings)
    assert set(windows) == {"weekly-full-sync", "monthly-statistics"}
    for entry in entries(settings):
        due = next_due_after(entry.schedule, at(0))
        window = timedelta(seconds=windows[entry.name]) if entry.name in windows else None
        assert decide(entry.schedule, due - S, due + timedelta(seconds=60), window).action == "send", entry.name


def test_baseline_is_the_same_for_every_beat_whenever_it_starts() -> None:
    """Without a record, due times up to now count as handled; an interval's grid is anchored at the epoch."""
    every = schedule(timedelta(seconds=30))
    assert catchup.baseline(every, at(12, 0, 44)) == catchup.baseline(every, at(12, 0, 31)) == at(12, 0, 30)
    assert next_due_after(every, catchup.baseline(every, at(12, 0, 44))) == at(12, 1)
    assert decide(every, catchup.baseline(every, at(12, 0, 44)), at(12, 0, 44)).action == "wait"
    assert catchup.baseline(FIVE, at(12, 7)) == at(12, 7)
    assert decide(FIVE, catchup.baseline(FIVE, at(12, 7)), at(12, 7)).action == "wait", "12:05 is not re-sent"


def test_an_occurrence_is_named_by_its_entry_and_nominal_due_time() -> None:
    due = at(12, 5)
    assert (
        catchup.occurrence_key("health-check", due)
        == f"taskfleet:beat:occurrence:health-check:{int(due.timestamp()) * 1000}"
    )
    assert catchup.occurrence_id("health-check", due) == catchup.occurrence_id("health-check", at(12, 5))
    assert catchup.occurrence_id("health-check", due) != catchup.occurrence_id("health-check", at(12, 10))
    assert catchup.occurrence_id("health-check", due) != catchup.occurrence_id("beat-canary", due)


def test_an_occurrence_record_outlives_the_last_moment_it_could_be_sent() -> None:
    window = default_window(timedelta(minutes=5))
    assert catchup.occurrence_ttl(FIVE, at(12, 5), window) == timedelta(minutes=5) + window + timedelta(minutes=1)
    monthly = crontab(minute=0, hour=5, day_of_month=1)
    due = datetime(2026, 2, 1, 5, tzinfo=UTC)
    assert catchup.occurrence_ttl(monthly, due, timedelta(hours=12)) == timedelta(days=28, hours=12, minutes=1)
