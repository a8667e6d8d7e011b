"""Outbox commit -> publish latency: SQLite and PostgreSQL, each wake-up path alone.

    uv run python bench/bench_outbox.py [--jobs 400] [--rate 100] [--backends sqlite,postgresql]

A producer commits one transaction per job (``enqueue_in`` + commit) at a paced rate; a relay on its own thread
(as in the API process) publishes through the fleet's producer path to a fresh valkey-server. Latency is from
the moment ``commit()`` returned to the moment the publish (``send_task`` + job record) returned, per job.
Paths: ``commit hook`` (in-process after_commit wake-up, NOTIFY too on PostgreSQL), ``LISTEN/NOTIFY`` (the hook
off: what a relay in another process sees), ``polling`` (both off, OUTBOX_POLL_SECONDS=1: the fallback).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.environment import applied_env  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.valkey_server import ValkeyServer  # noqa: E402


class TimedPublisher:
    """The fleet's publisher, noting when each job's publish returned."""

    def __init__(self) -> None:
        from taskfleet_api.outbox import FleetPublisher

        self.inner = FleetPublisher()
        self.published: dict[str, float] = {}
        self.lock = threading.Lock()

    @contextmanager
    def connect(self) -> Iterator[Callable[..., None]]:
        with self.inner.connect() as send:

            def timed(message: object) -> None:
                send(message)
                with self.lock:
                    self.published[message.job_id] = time.perf_counter()  # type: ignore[attr-defined]

            yield timed


async def produce(url: str, jobs: int, rate: float) -> dict[str, float]:
    from taskfleet_data.db import database
    from taskfleet_data.outbox import enqueue_in

    committed: dict[str, float] = {}
    async with database(url) as sessions:
        started = time.perf_counter()
        for i in range(jobs):
            async with sessions() as session:
                job_id = await enqueue_in(session, "maintenance.canary", kwargs={"payload": {"i": i}})
                await session.commit()
                committed[job_id] = time.perf_counter()
            pause = started + (i + 1) / rate - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
    return committed


def measure(url: str, path: str, jobs: int, rate: float) -> list[float]:
    from taskfleet_data.outbox import Relay, RelayThread
    from taskfleet_data.outbox.settings import OutboxSettings

    publisher = TimedPublisher()
    relay = Relay(url, publisher, OutboxSettings(outbox_poll_seconds=1.0), wake_on_commit=path == "commit hook")
    if path == "polling":
        relay._listen = _no_listen  # type: ignore[method-assign]  # the fallback alone: no NOTIFY either
    thread = RelayThread(relay).start()
    try:
        time.sleep(1.5)  # the relay has opened its engine (and LISTENs)
        committed = asyncio.run(produce(url, jobs, rate))
        deadline = time.monotonic() + 30
        while len(publisher.published) < len(committed) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        thread.stop()
    return sorted((publisher.published[j] - t) * 1000 for j, t in committed.items() if j in publisher.published)


async def _no_listen() -> None:
    return None


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--rate", type=float, default=100.0, help="commits per second")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--polling-jobs", type=int, default=40, help="jobs for the polling-only row (slow)")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    valkey = ValkeyServer(work / "valkey").start()
    postgres = PostgresServer().start() if "postgresql" in options.backends else None
    print(f"{'backend':<11} {'wake-up path':<15} {'jobs':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    try:
        for backend in options.backends.split(","):
            url = f"sqlite+aiosqlite:///{work / 'outbox.db'}" if backend == "sqlite" else postgres.create_database()  # type: ignore[union-attr]
            paths = ["commit hook", *(["LISTEN/NOTIFY"] if backend == "postgresql" else []), "polling"]
            for path in paths:
                count = options.polling_jobs if path == "polling" else options.jobs
                with applied_env({"REDIS_URL": valkey.url, "DATABASE_URL": url, "OUTBOX_RELAY_ENABLED": "false"}):
                    latencies = measure(url, path, count, min(options.rate, 20) if path == "polling" else options.rate)
                p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
                print(f"{backend:<11} {path:<15} {len(latencies):>5} {p50:>8.1f} {p99:>8.1f} {latencies[-1]:>8.1f}")
    finally:
        if postgres is not None:
            postgres.stop()
        valkey.stop()


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    main()
