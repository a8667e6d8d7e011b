"""The model's parts that are not the HPA: KEDA's activation and cooldown, the workers, the ReplicaSet's victim
choice, the grace period; and what pod-deletion-cost changes on a bursty trace."""

from __future__ import annotations

import math
import random
from dataclasses import replace

from taskfleet_capacity import durations, report, traces
from taskfleet_capacity.hpa import Behavior, Policy, Rules
from taskfleet_capacity.replicaset import Ranking, victims
from taskfleet_capacity.sim import Model, Pod, simulate
from taskfleet_capacity.traces import Arrival
from taskfleet_capacity.values import QueueScaling

FAST_DOWN = Behavior(Rules(0, (Policy("Pods", 4, 15),), "Max"), Rules(60, (Policy("Percent", 100, 15),), "Max"))


def queue(**changes: object) -> QueueScaling:
    base = QueueScaling(
        name="sync", concurrency=4, prefetch_multiplier=1, min_replicas=0, max_replicas=10, target=4,
        activation=0, polling_interval=30, cooldown_period=300, grace_seconds=60, behavior=FAST_DOWN,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_burst_into_fixed_workers_drains_in_rounds() -> None:
    # 10 tasks of 2 s into one pod of 4 processes (no autoscaling): rounds start at 0, 2 and 4 s.
    model = Model(queue(autoscaled=False, min_replicas=1, max_replicas=1), durations.fixed(2), durations.fixed(0))
    result = simulate(model, [Arrival(0.0)] * 10)
    assert result.waits == [0.0] * 4 + [2.0] * 4 + [4.0] * 2
    assert result.drain_time == 6.0
    assert result.pod_seconds == result.end  # one pod, always there


def test_a_run_lasts_at_most_the_time_limit() -> None:
    model = Model(queue(autoscaled=False, min_replicas=1, time_limit=60), durations.fixed(600), durations.fixed(0))
    assert simulate(model, [Arrival(0.0), Arrival(0.0, 10.0)]).tasks[0].end == 60.0


def test_keda_wakes_an_idle_queue_at_its_next_poll_and_sleeps_after_the_cooldown() -> None:
    # Polls at 0, 30, 60, ...: a task published at 100 s is seen at 120 s, the pod is ready 20 s later.
    model = Model(queue(), durations.fixed(5), durations.fixed(20), keda_phase=0)
    result = simulate(model, [Arrival(100.0)])
    assert result.waits == [40.0]
    (pod,) = result.pods
    assert pod.created == 120.0
    # Last active poll at 150 s (the task ran until 145 s, the poll at 150 s sees nothing: last active 120 s);
    # scaled to zero at the first poll at least cooldownPeriod (300 s) later: 420 s.
    assert pod.exited_at == 420.0


def test_the_activation_threshold_keeps_small_backlogs_waiting() -> None:
    model = Model(queue(activation=3), durations.fixed(1), durations.fixed(0), keda_phase=0)
    result = simulate(model, [Arrival(10.0)] * 3 + [Arrival(70.0)])
    assert result.pods[0].created == 90.0  # 3 waiting is not more than 3; 4 is, at the poll after 70 s


def test_a_backlog_scales_to_ceil_of_work_over_target() -> None:
    model = Model(queue(), durations.fixed(600), durations.fixed(10))
    result = simulate(model, [Arrival(1.0)] * 30)
    assert max(s.replicas for s in result.samples) == math.ceil(30 / 4)


def test_victims_not_ready_first_then_cheapest_then_most_recently_ready() -> None:
    now = 1000.0
    starting = Pod(0, created=990.0, uid=0.9)
    old = Pod(1, created=0.0, uid=0.1, ready_at=10.0)
    fresh = Pod(2, created=900.0, uid=0.5, ready_at=990.0)
    busy_fresh = Pod(3, created=905.0, uid=0.2, ready_at=991.0)
    pods = [old, fresh, busy_fresh, starting]
    assert victims(pods, 2, Ranking(now)) == [starting, busy_fresh]  # 9 s and 10 s since ready: one bucket, by UID
    held = {0: 0, 1: 0, 2: 0, 3: 3}
    assert victims(pods, 3, Ranking(now, cost=lambda p: held[p.id])) == [starting, fresh, old]


def test_a_busy_victim_drains_within_the_grace_and_is_killed_after_it() -> None:
    # Two pods, four 30 s and four 600 s tasks; the load falls, one pod goes: with a 60 s grace, its long
    # tasks are killed and run again elsewhere; its short ones finish.
    behavior = Behavior(FAST_DOWN.scale_up, Rules(0, (Policy("Pods", 1, 15),), "Max"))
    scaling = queue(autoscaled=True, min_replicas=1, max_replicas=2, behavior=behavior, grace_seconds=60)
    model = Model(scaling, durations.fixed(30), durations.fixed(0), initial_replicas=2, redelivery_delay=12)
    arrivals = [Arrival(0.0, 600.0)] * 2 + [Arrival(0.0, 30.0)] * 4 + [Arrival(0.0, 600.0)] * 2
    result = simulate(model, arrivals)
    stats = report.summary(result)
    assert stats["scale_in_victims"] == 1
    assert stats["interrupted"] + stats["drained"] == stats["running_at_sigterm"]
    assert all(t.end is not None for t in result.tasks), "every task finishes, killed ones on a second run"
    assert sum(t.runs for t in result.tasks) == len(result.tasks) + stats["interrupted"]


def test_the_fleet_wide_rate_limit_defers_starts() -> None:
    # sync's 10 per 60 s (the queue registry): 30 tasks at once on 10 ready pods start 10 a minute.
    scaling = queue(autoscaled=False, min_replicas=10, max_replicas=10, rate_limit=(10, 60.0))
    result = simulate(Model(scaling, durations.fixed(1), durations.fixed(0)), [Arrival(0.0)] * 30)
    starts = sorted(t.start for t in result.tasks if t.start is not None)
    assert len(starts) == 30 and result.deferred >= 20
    assert all(sum(1 for s in starts if t <= s < t + 60) <= 10 for t in starts), "never 11 starts in 60 s"
    assert starts[-1] >= 120


def bursty_model(deletion_cost: bool) -> tuple[Model, list[Arrival]]:
    """Bursts of long tasks with a short grace: scale-in lands while some pods still run the tail of a burst."""
    scaling = queue(grace_seconds=120, polling_interval=15)
    model = Model(scaling, durations.parse("lognormal:120:1.0"), durations.fixed(20), deletion_cost=deletion_cost)
    arrivals = traces.generate("bursts:size=80,every=1200,hours=12,spread=60", "sync", random.Random(7))
    return model, arrivals


def test_deletion_cost_spares_busy_pods_on_a_bursty_trace() -> None:
    without = report.summary(simulate(*bursty_model(False)))
    with_cost = report.summary(simulate(*bursty_model(True)))
    # Busy victims are about as many either way (the tail of a burst is spread over every pod); what changes is
    # how much work the victims hold: the least busy go first.
    assert without["running_at_sigterm"] > 0 and without["interrupted"] > 0
    assert with_cost["running_at_sigterm"] < 0.8 * without["running_at_sigterm"]
    assert with_cost["interrupted"] < 0.8 * without["interrupted"]
    assert with_cost["tasks"] == without["tasks"]
