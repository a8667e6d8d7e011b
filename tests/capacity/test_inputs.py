"""The simulator's inputs: duration specs (the fleet's own Prometheus histogram among them) and arrival traces
(CSV, generated, and the Beat schedule's own entries)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from taskfleet_capacity import durations, traces
from taskfleet_capacity.report import percentile
from taskfleet_core.observability.metrics import RUNTIME_BUCKETS


def test_duration_specs() -> None:
    rng = random.Random(3)
    assert durations.parse("30").draw(rng) == 30.0
    assert durations.parse("fixed:2.5").draw(rng) == 2.5
    exp = [durations.parse("exp:10").draw(rng) for _ in range(20000)]
    assert sum(exp) / len(exp) == pytest.approx(10, rel=0.05)
    logn = durations.parse("lognormal:60:0.8")
    draws = [logn.draw(rng) for _ in range(20000)]
    assert percentile(draws, 50) == pytest.approx(60, rel=0.05)
    assert sum(draws) / len(draws) == pytest.approx(logn.mean, rel=0.05)
    with pytest.raises(ValueError, match="unknown distribution"):
        durations.parse("gamma:1:2")


def test_an_empirical_sample_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("seconds,task\n4,a\n6,b\n")
    dist = durations.parse(f"empirical:{path}")
    assert {dist.draw(random.Random(i)) for i in range(50)} == {4.0, 6.0}
    assert dist.mean == 5.0


def test_the_fleets_runtime_histogram_as_a_distribution() -> None:
    # The same metric, buckets and labels the workers export (observability/metrics.py), in a registry of its own.
    registry = CollectorRegistry()
    runtime = Histogram(
        "celery_task_runtime", "runtime", ("name", "hostname", "queue_name"), buckets=RUNTIME_BUCKETS, registry=registry
    )
    rng = random.Random(5)
    observed = [rng.lognormvariate(3.0, 0.5) for _ in range(5000)]  # median e^3 = 20 s
    for value in observed:
        runtime.labels("sync.x", "w1", "sync").observe(value)
    for _ in range(1000):
        runtime.labels("email.send_email", "w2", "email").observe(0.2)
    text = generate_latest(registry).decode()
    dist = durations.from_histogram(text, "sync")
    draws = [dist.draw(rng) for _ in range(20000)]
    # Bucket interpolation is coarse (bounds 10, 30, 60 s around the median): within a bucket's resolution.
    assert percentile(draws, 50) == pytest.approx(percentile(observed, 50), rel=0.25)
    assert dist.mean == pytest.approx(sum(observed) / len(observed), rel=0.25)
    assert durations.from_histogram(text, "email").mean < 0.3
    with pytest.raises(ValueError, match="no celery_task_runtime observations for queue matching"):
        durations.from_histogram(text, "matching")


def test_a_csv_trace_with_iso_times_queues_and_durations(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(
        "timestamp,queue,duration\n"
        "2026-01-05T10:00:10Z,sync,\n2026-01-05T10:00:00Z,sync,90\n2026-01-05T10:00:05Z,email,\n"
    )
    arrivals = traces.generate(str(path), "sync", random.Random(1))
    assert [(a.at, a.duration) for a in arrivals] == [(0.0, 90.0), (10.0, None)]


def test_generated_traces() -> None:
    rng = random.Random(2)
    steady = traces.generate("steady:rate=2,hours=1", "sync", rng)
    assert len(steady) == pytest.approx(7200, rel=0.05)
    bursts = traces.generate("bursts:size=50,every=600,hours=1", "sync", rng)
    assert sorted({a.at for a in bursts}) == [60.0, 660.0, 1260.0, 1860.0, 2460.0, 3060.0]
    assert len(bursts) == 300


def test_the_beat_schedule_of_the_sync_queue_for_a_week() -> None:
    # Sync-queue entries of taskfleet_beat.schedule: daily-grant-sync (02:00), weekly-full-sync (Sun 03:00),
    # sync-grants-periodic (every 6 h), daily-expired-cleanup (04:00), weekly-reindex-search (Sat 05:00).
    week = traces.generate("beat:days=7", "sync", random.Random(1))
    assert len(week) == 7 + 1 + 28 + 7 + 1
    fanned = traces.beat("sync", 7 * 86400, {"sync.sync_all_grant_sources": 6, "scheduled.daily_grant_sync": 6})
    assert len(fanned) == 44 + 28 * 5 + 7 * 5
    assert sum(1 for a in week if a.at == 2 * 3600) == 1  # Monday 02:00: the daily sync (the 6-hourly is at 00:00)
