"""``make chaos``: the reliability scenarios at full size, each on a fresh fleet, with one report table.

Every scenario reports submitted / succeeded / dead-lettered / missing / duplicated side effects and the time
until the last job a crash stranded had run; the table is printed and written to ``var/chaos/report.md``
(docs/reliability.md quotes the last run). Production values throughout: the visibility timeout is 3600 s and
``WORKER_LOST_SECONDS`` is its default, so every recovery below comes from the reaper and Valkey's schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from taskfleet_core.settings import BrokerSettings

from tests.reliability import scenarios
from tests.reliability.harness import Fleet, Report, write_report

REPORT_PATH = Path(__file__).resolve().parents[2] / "var" / "chaos" / "report.md"
REPORTS: list[Report] = []
#: The production default, not the fast suite's 10 s.
WORKER_LOST_SECONDS = str(BrokerSettings.model_fields["worker_lost_seconds"].default)
#: Every stranded job must have run within this many seconds of the crash (issue: "within 60 s").
RECOVERY_LIMIT = 60.0


@pytest.fixture(scope="module", autouse=True)
def report_table() -> Iterator[None]:
    yield
    write_report(REPORTS, REPORT_PATH)


@pytest.fixture
def fresh_fleet(tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    fleets: list[Fleet] = []

    def make(**env: str) -> Fleet:
        fleet = Fleet(tmp_path / f"fleet{len(fleets)}", **{"WORKER_LOST_SECONDS": WORKER_LOST_SECONDS, **env}).start()
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop()


@pytest.mark.timeout(300)
def test_sigkill_mid_task(fresh_fleet) -> None:
    report = scenarios.sigkill_mid_task(fresh_fleet(), jobs=4)
    REPORTS.append(report)
    assert report.missing == 0 and report.duplicated_effects == 0, report
    assert report.recovery is not None and report.recovery < RECOVERY_LIMIT, report


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode", ["pod", "main"])
def test_sigkill_holding_delayed_work(fresh_fleet, mode: str) -> None:
    report = scenarios.sigkill_with_delayed_work(fresh_fleet(), mails=80, countdowns=6, mode=mode)
    REPORTS.append(report)
    assert report.missing == 0 and report.duplicated_effects == 0, report
    assert report.recovery is not None and report.recovery < RECOVERY_LIMIT, report


@pytest.mark.timeout(300)
def test_sigkill_of_the_task_processes(fresh_fleet) -> None:
    report = scenarios.sigkill_children(fresh_fleet(), jobs=4)
    REPORTS.append(report)
    assert report.missing == 0, report
    assert report.recovery is not None and report.recovery < RECOVERY_LIMIT, report


@pytest.mark.timeout(400)
def test_valkey_kill_9_under_load(fresh_fleet) -> None:
    report = scenarios.redis_restart(fresh_fleet(), seconds=40, rate=20, downtime=3, hard=True)
    REPORTS.append(report)
    assert report.missing == 0 and report.details["revoked"] == 0, report
    assert report.recovery is not None and report.recovery < RECOVERY_LIMIT, report


@pytest.mark.timeout(300)
def test_duplicate_deliveries(fresh_fleet) -> None:
    report = scenarios.duplicate_deliveries(fresh_fleet(), copies=4)
    REPORTS.append(report)
    assert report.missing == 0 and report.duplicated_effects == 0 and report.details["sent"] == 1, report


@pytest.mark.timeout(300)
def test_sigterm_mid_task(fresh_fleet) -> None:
    report = scenarios.sigterm_mid_task(fresh_fleet(), prefetched=6)
    REPORTS.append(report)
    assert report.missing == 0, report
    assert all(w != report.details["long_worker"] for w in report.details["quick_workers"]), report.notes


@pytest.mark.timeout(400)
def test_redis_restart_under_load(fresh_fleet) -> None:
    report = scenarios.redis_restart(fresh_fleet(), seconds=40, rate=20, downtime=5)
    REPORTS.append(report)
    assert report.missing == 0 and report.details["beat_after"] > 0, report


@pytest.mark.timeout(300)
def test_poison_and_unknown(fresh_fleet) -> None:
    report, seen = scenarios.poison_and_unknown(fresh_fleet(), good_jobs=50)
    REPORTS.append(report)
    assert report.missing == 0 and seen["alive"], report


@pytest.mark.timeout(600)
def test_fleet_wide_email_rate_limit(fresh_fleet) -> None:
    # 30 per 30 s (time compressed 2x); the visibility timeout stays long: deferred jobs wait up to 30 s
    fleet = fresh_fleet(RATE_LIMIT_TIME_SCALE="0.5")
    report = scenarios.rate_limited_emails(fleet, emails=90, workers=3, window=30.0)
    REPORTS.append(report)
    assert report.missing == 0 and report.duplicated_effects == 0, report
    assert report.details["peak"] <= 30, report.notes


@pytest.mark.timeout(1200)
def test_sustained_mixed_load_with_kills(fresh_fleet) -> None:
    report = scenarios.load_with_kills(fresh_fleet(), jobs=3000, kill_every=8.0, default_workers=2, timeout=900)
    REPORTS.append(report)
    assert report.missing == 0, report
