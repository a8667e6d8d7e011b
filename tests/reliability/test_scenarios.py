"""Fast variants of the chaos scenarios, against real processes (redis-server with AOF, workers, API, SMTP).

The long variants run under ``make chaos`` (tests/chaos); these keep the same code paths small
enough for every ``make test``.
"""

from __future__ import annotations

import pytest

from tests.reliability import scenarios
from tests.reliability.harness import Fleet

pytestmark = pytest.mark.slow


@pytest.mark.timeout(150)
def test_poison_and_unknown_messages_are_dead_lettered_and_the_worker_keeps_consuming(clean: Fleet) -> None:
    report, seen = scenarios.poison_and_unknown(clean)
    dlq = seen["dlq"]
    reasons = {e["reason"] for e in dlq.values()}
    assert seen["alive"], report.notes
    assert report.missing == 0, report
    assert report.succeeded == 5
    assert {"unknown_task", "malformed", "permanent_failure", "retries_exhausted"} <= reasons
    unknown = dlq[seen["poison"]["unknown"]]
    assert unknown["task"] == "nobody.knows" and unknown["kwargs"] == {"a": 1}
    assert dlq[seen["poison"]["pickle"]]["exception_type"] == "ContentDisallowed"
    assert dlq[seen["poison"]["invalid_args"]]["exception_type"] == "InvalidTaskArguments"
    exhausted = dlq[seen["exhausted"]]
    assert exhausted["retries"] == 3 and exhausted["exception_type"] == "TransientError"
    assert "TransientError" in exhausted["traceback"] and exhausted["first_seen_at"]
    assert any(e["raw_body"] == "this is not a kombu envelope" for e in dlq.values())

    # the API over the same DLQ: list, filter, inspect, replay (new id, linked), purge
    http = clean.http
    assert http is not None
    page = http.get("/api/v1/dlq", params={"queue": "default", "limit": 3}).json()
    assert page["total"] == len(dlq) and len(page["items"]) == 3
    only = http.get("/api/v1/dlq", params={"reason": "unknown_task"}).json()
    assert [i["task"] for i in only["items"]] == ["nobody.knows"]
    assert http.get(f"/api/v1/dlq/{seen['permanent']}").json()["traceback"]
    assert http.get("/api/v1/dlq/stats").json()["default"] == len(dlq)
    assert http.post(f"/api/v1/dlq/{seen['poison']['unknown']}/replay").status_code == 409
    replay = http.post(f"/api/v1/dlq/{seen['permanent']}/replay")
    assert replay.status_code == 200, replay.text
    new_id = replay.json()["new_job_id"]
    assert new_id != seen["permanent"]
    clean.wait_final([new_id], timeout=30)
    again = http.get(f"/api/v1/dlq/{new_id}").json()  # failed again: dead-lettered, naming its predecessor
    assert again["replay_of"] == seen["permanent"]
    assert http.get(f"/api/v1/dlq/{seen['permanent']}").status_code == 404  # replayed entries leave the DLQ
    purged = http.delete("/api/v1/dlq", params={"reason": "malformed"}).json()["purged"]
    assert purged >= 4


@pytest.mark.timeout(150)
def test_sigkill_mid_task_redelivers_and_the_email_is_sent_exactly_once(clean: Fleet) -> None:
    report = scenarios.sigkill_mid_task(clean, jobs=2)
    assert report.missing == 0 and report.succeeded == 2, report
    assert report.duplicated_effects == 0, report
    assert len(clean.smtp.by_message_id()) == 2


@pytest.mark.timeout(150)
def test_sigterm_mid_task_finishes_the_running_job_and_hands_back_prefetched_ones(clean: Fleet) -> None:
    report = scenarios.sigterm_mid_task(clean, prefetched=3)
    assert report.missing == 0 and report.succeeded == 4, report
    long_worker = report.details["long_worker"]
    assert long_worker.startswith("default-"), report.notes
    assert all(w != long_worker for w in report.details["quick_workers"]), report.notes


@pytest.mark.timeout(180)
def test_redis_restart_under_load_loses_no_accepted_job(clean: Fleet) -> None:
    report = scenarios.redis_restart(clean, seconds=6, rate=8, downtime=2)
    assert report.submitted > 15
    assert report.missing == 0, report
    assert report.details["beat_after"] > 0, report.notes


@pytest.mark.timeout(150)
def test_three_email_workers_stay_within_the_fleet_wide_rate_limit(clean: Fleet) -> None:
    report = scenarios.rate_limited_emails(clean, emails=40, workers=3, window=6.0)
    assert report.missing == 0 and report.duplicated_effects == 0, report
    assert report.details["peak"] <= 30, report.notes
    assert report.details["span"] >= 6.0, report.notes  # 40 sends cannot fit in one window


@pytest.mark.timeout(300)
def test_mixed_load_with_worker_kills_ends_in_success_or_dlq(clean: Fleet) -> None:
    report = scenarios.load_with_kills(clean, jobs=100, kill_every=5.0, timeout=150)
    assert report.missing == 0, report
    assert report.duplicated_effects == 0, report
    assert report.dead_lettered > 0 and report.succeeded > 70


@pytest.mark.timeout(120)
def test_a_message_that_keeps_coming_back_is_dead_lettered_at_the_redelivery_limit(clean: Fleet) -> None:
    seen = scenarios.poison_pill_redeliveries(clean, copies=12)
    entry = seen["entry"]
    assert entry is not None and entry["reason"] == "redelivery_limit", seen
    assert entry["times_dead_lettered"] == 2  # deliveries 11 and 12 of the same job


@pytest.mark.timeout(150)
def test_racing_copies_of_one_email_job_send_one_email(clean: Fleet) -> None:
    before = sum(clean.smtp.by_message_id().values())
    report = scenarios.duplicate_deliveries(clean, copies=3)
    assert report.missing == 0 and report.succeeded == 1, report
    assert report.details["sent"] - before == 1 and report.duplicated_effects == 0, report.notes


@pytest.mark.timeout(240)
def test_sigkill_while_holding_delayed_work_strands_nothing(clean: Fleet) -> None:
    """The visibility timeout is 3600 s: only Valkey's schedule and the reaper can make this pass in time."""
    report = scenarios.sigkill_with_delayed_work(clean, mails=36, countdowns=3, mode="main")
    assert report.missing == 0 and report.duplicated_effects == 0, report
    assert report.recovery is not None and report.recovery < 10 + 20, report  # WORKER_LOST_SECONDS=10 + slack


@pytest.mark.timeout(150)
def test_sigkill_of_the_task_processes_puts_their_jobs_back_at_once(clean: Fleet) -> None:
    report = scenarios.sigkill_children(clean, jobs=2)
    assert report.missing == 0 and report.succeeded == 2, report
    assert report.recovery is not None and report.recovery < 20, report
