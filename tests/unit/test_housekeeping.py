"""The housekeeping scheduler: each job at its own interval, a failing job never stops the others."""

from __future__ import annotations

import redis
from taskfleet_core.reliability import housekeeping


def test_jobs_run_at_their_interval_and_failures_are_contained(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(housekeeping, "_JOBS", {})
    calls: list[str] = []

    @housekeeping.every(5, "five")
    def five(client: redis.Redis) -> None:
        calls.append("five")

    @housekeeping.every(1, "broken")
    def broken(client: redis.Redis) -> None:
        calls.append("broken")
        raise redis.ConnectionError("broker away")

    client = redis.Redis(port=1)  # never contacted: the jobs ignore it
    for now in (100.0, 101.0, 102.0, 105.0):
        housekeeping.run_due(client, now)
    assert calls.count("five") == 2  # at 100 and 105
    assert calls.count("broken") == 4
