"""What a worker's pod-deletion-cost is, and when a change is worth a PATCH (taskfleet_core.scaling.deletion_cost)."""

from __future__ import annotations

import math

import pytest
from celery import Celery
from taskfleet_core import settings
from taskfleet_core.scaling import deletion_cost
from taskfleet_core.scaling.deletion_cost import INT32_MAX, due_at, work_held, worth_sending


def test_idle_costs_nothing_and_each_running_task_counts_one_plus_its_age() -> None:
    assert work_held([], now=1000.0) == 0
    assert work_held([1000.0], now=1000.0) == 1, "a task that just started already outranks an idle pod"
    assert work_held([940.0], now=1000.0) == 61
    assert work_held([940.0, 999.5], now=1000.0) == 62, "running tasks add up"
    assert work_held([1000.5], now=1000.0) == 1, "a start a little in the future (clock skew) is age 0"


def test_older_work_costs_more_so_the_pod_with_the_youngest_work_goes_first() -> None:
    old, young = work_held([0.0], now=600.0), work_held([590.0, 595.0], now=600.0)
    assert old > young > 0


def test_the_cost_stays_in_int32() -> None:
    assert work_held([0.0] * 8, now=1e12) == INT32_MAX == 2**31 - 1


def test_the_first_value_is_always_sent_a_restarted_container_may_carry_a_stale_one() -> None:
    assert worth_sending(None, 0) and worth_sending(None, 5)


def test_turning_idle_or_busy_is_always_worth_a_patch() -> None:
    assert worth_sending(0, 1)
    assert worth_sending(1800, 0)
    assert not worth_sending(0, 0)


def test_in_between_only_a_doubling_or_halving_is_sent() -> None:
    assert not worth_sending(10, 11) and not worth_sending(10, 19) and worth_sending(10, 20)
    assert not worth_sending(10, 6) and worth_sending(10, 5)


def test_a_long_task_is_re_sent_about_log2_of_its_age_times() -> None:
    """One 30-minute task sampled every second: what the rate bound leaves is at most this many PATCHes."""
    sent, patches = 0, 0
    for age in range(1800):
        cost = work_held([0.0], now=float(age))
        if worth_sending(sent, cost):
            sent, patches = cost, patches + 1
    assert patches == math.ceil(math.log2(1800)) == 11


def test_with_the_chart_s_bounds_a_30_minute_task_costs_seven_patches() -> None:
    """Sampled every second, 15 s interval: turning busy at once, doublings at most every 60 s, turning idle."""
    interval, sent, ready_at, patches = 15.0, 0, 0.0, []
    for second in range(1900):
        cost = work_held([0.0], now=float(second)) if second < 1800 else 0
        due = due_at(sent, cost, ready_at, failing=False, min_interval=interval)
        if due is not None and due <= second:
            sent, ready_at = cost, second + interval
            patches.append((second, cost))
    assert patches == [(0, 1), (60, 61), (121, 122), (243, 244), (487, 488), (975, 976), (1800, 0)]


def test_a_turn_waits_one_interval_an_in_between_change_four_a_failure_its_backoff() -> None:
    assert due_at(0, 0, 100.0, failing=False, min_interval=15) is None
    assert due_at(None, 0, 100.0, failing=False, min_interval=15) == 100.0
    assert due_at(0, 7, 100.0, failing=False, min_interval=15) == 100.0
    assert due_at(7, 0, 100.0, failing=False, min_interval=15) == 100.0
    assert due_at(7, 14, 100.0, failing=False, min_interval=15) == 145.0
    assert due_at(7, 14, 100.0, failing=True, min_interval=15) == 100.0, "retrying: the backoff already waits"


@pytest.mark.parametrize(
    ("env", "installed"),
    [
        ({}, False),  # off unless the chart switches it on: `make up` and the tests have no API server
        ({"DELETION_COST_ENABLED": "false", "POD_NAME": "p", "POD_NAMESPACE": "n"}, False),
        ({"DELETION_COST_ENABLED": "true"}, False),  # on, but no downward-API names: nothing to patch
        ({"DELETION_COST_ENABLED": "true", "POD_NAME": "p", "POD_NAMESPACE": "n"}, True),
    ],
)
def test_the_worker_step_is_added_only_when_enabled_for_a_named_pod(
    env: dict[str, str], installed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DELETION_COST_ENABLED", "POD_NAME", "POD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.reload()
    try:
        app = Celery("deletion-cost-install")
        app.conf.taskfleet_queue = "default"
        deletion_cost.install(app)
        steps = {step.__name__ for step in app.steps["worker"]}
    finally:
        monkeypatch.undo()
        settings.reload()
    assert ("DeletionCostStep" in steps) is installed
