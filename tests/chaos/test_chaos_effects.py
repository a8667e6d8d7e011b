"""``make chaos``: effects once when Valkey restarts while the effects run (issue 18), on a fresh fleet.

A real email worker sends mails that hang at SMTP (``slow*@`` recipients wait in RCPT); Valkey (AOF on) is
stopped while they hang and started again seconds later, after they were sent. Every mail must arrive
exactly once: the done-records are written once Valkey answers, and the copies sent afterwards with the same
idempotency keys (what a late redelivery or a replay is) are suppressed. The table goes to
``var/chaos/effects-report.md`` in the report format of test_chaos.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from taskfleet_core.settings import BrokerSettings

from tests.reliability.harness import Fleet, Report, write_report
from tests.reliability.scenarios import _email, _tally

REPORT_PATH = Path(__file__).resolve().parents[2] / "var" / "chaos" / "effects-report.md"
REPORTS: list[Report] = []
#: The production default, not the fast suite's 10 s.
WORKER_LOST_SECONDS = str(BrokerSettings.model_fields["worker_lost_seconds"].default)


@pytest.fixture(scope="module", autouse=True)
def report_table() -> Iterator[None]:
    yield
    write_report(REPORTS, REPORT_PATH)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path / "fleet", WORKER_LOST_SECONDS=WORKER_LOST_SECONDS).start()
    yield fleet
    fleet.stop()


def valkey_restart_mid_effect(fleet: Fleet, mails: int = 4, downtime: float = 6.0) -> Report:
    """``mails`` mails at SMTP when Valkey stops; it stays down ``downtime`` s (a slow AOF load), then starts."""
    report, t0 = Report("Valkey restart mid-effect (AOF, mails at SMTP)"), time.monotonic()
    fleet.start_workers("email", 1)
    keys = [f"restart-{uuid.uuid4().hex[:8]}-{i}" for i in range(mails)]
    to = {key: f"slow-{key}@example.com" for key in keys}
    ids = [fleet.submit("email.send_email", **_email(to[key], key=key)) for key in keys]
    assert all(ids), "the API refused a job before the restart"
    deadline = time.monotonic() + 60
    while fleet.smtp.slow_in_progress < mails and time.monotonic() < deadline:
        time.sleep(0.05)
    at_smtp = fleet.smtp.slow_in_progress
    crash = time.time()
    fleet.redis.stop()
    time.sleep(downtime)
    sent_while_down = len(fleet.smtp.messages)
    fleet.redis.start()
    states = fleet.wait_final([j for j in ids if j], timeout=180)
    # the same mails again: what a redelivery of the originals or a replay of them would be
    copies = [fleet.submit("email.send_email", **_email(to[key], key=key)) for key in keys]
    states |= fleet.wait_final([j for j in copies if j], timeout=120)
    suppressed = sum(bool(fleet.result(j).get("result", {}).get("duplicate_suppressed")) for j in copies if j)
    _tally(fleet, report, [j for j in ids + copies if j], states)
    arrived = fleet.smtp.by_message_id()
    report.missing += mails - len(arrived)  # a key whose mail never arrived
    report.recovery = fleet.recovery_after(crash, [j for j in ids if j], {})
    report.seconds = time.monotonic() - t0
    report.notes = (
        f"{at_smtp} mails at SMTP when Valkey stopped, {sent_while_down} sent while it was down ({downtime:.0f} s); "
        f"{len(arrived)} distinct mails, {sum(arrived.values())} sends; "
        f"{suppressed}/{len(copies)} copies with the same keys suppressed; worker restarts: {len(fleet.restarts)}"
    )
    report.details = {"sends": sum(arrived.values()), "suppressed": suppressed, "at_smtp": at_smtp}
    return report


@pytest.mark.timeout(300)
def test_valkey_restart_mid_effect(fleet: Fleet) -> None:
    report = valkey_restart_mid_effect(fleet, mails=4, downtime=6.0)
    REPORTS.append(report)
    assert report.details["at_smtp"] == 4, report  # the restart really happened mid-effect
    assert report.missing == 0 and report.duplicated_effects == 0, report
    assert report.details["sends"] == 4 and report.details["suppressed"] == 4, report
