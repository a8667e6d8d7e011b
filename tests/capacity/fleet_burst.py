"""A burst of N canary jobs into one real worker of K processes: measured, and predicted by the simulator.

The test (test_fleet_burst.py) runs a small burst on the session's valkey-server; run as a script it starts its
own valkey-server and prints the validation table of docs/capacity.md:

    uv run python -m tests.capacity.fleet_burst [--jobs 40] [--sleep 1.0] [--concurrency 1 2 4] [--repeat 3]

Measured: the publish time of each job (this process's clock just before ``send_task``), the arrival of its
STARTED and SUCCESS states on a pattern subscription (the result backend publishes every state it stores);
wait = STARTED - publish, drain = last SUCCESS - first publish. Predicted: the same publish times replayed on the
simulator with one pod of K processes (no autoscaling: the worker is already up), a fixed duration of the
canary's sleep.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from taskfleet_capacity import durations
from taskfleet_capacity.hpa import DEFAULT_BEHAVIOR
from taskfleet_capacity.report import percentile
from taskfleet_capacity.sim import Model, simulate
from taskfleet_capacity.traces import Arrival
from taskfleet_capacity.values import QueueScaling

from tests.support.environment import applied_env
from tests.support.processes import start_worker

RESULT_PREFIX = "celery-task-meta-"
QUEUE = "default"  # maintenance.canary's queue


@dataclass(frozen=True)
class Figures:
    drain: float
    p50: float
    p95: float
    p99: float

    @classmethod
    def of(cls, waits: list[float], drain: float) -> Figures:
        return cls(drain, percentile(waits, 50), percentile(waits, 95), percentile(waits, 99))


class StateListener:
    """When each job's STARTED and SUCCESS states were published (this process's clock)."""

    def __init__(self, url: str) -> None:
        self.pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(f"{RESULT_PREFIX}*")
        self.seen: dict[tuple[str, str], float] = {}
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping:
            message = self.pubsub.get_message(timeout=0.05)
            if message is None:
                continue
            at = time.time()
            try:
                meta = json.loads(message["data"])
            except (TypeError, ValueError):
                continue
            self.seen.setdefault((meta.get("task_id", ""), meta.get("status", "")), at)

    def wait_for(self, ids: list[str], status: str, timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while any((i, status) not in self.seen for i in ids):
            if time.monotonic() > deadline:
                missing = sum(1 for i in ids if (i, status) not in self.seen)
                raise TimeoutError(f"{missing} of {len(ids)} jobs never reached {status}")
            time.sleep(0.05)
        return {i: self.seen[(i, status)] for i in ids}

    def close(self) -> None:
        self.stopping = True
        self.thread.join()
        self.pubsub.close()


def measure(url: str, jobs: int, sleep: float) -> tuple[list[float], Figures]:
    """Publish ``jobs`` canaries (sleep_seconds ``sleep``) at once; the publish offsets and the measured figures."""
    from taskfleet_api.producer import celery_app

    app = celery_app()
    app.send_task("maintenance.canary", kwargs={}).get(timeout=30)  # connected, worker warm: not in the figures
    listener = StateListener(url)
    try:
        time.sleep(0.2)  # the subscription is live
        sent: list[tuple[str, float]] = []
        for _ in range(jobs):
            at = time.time()
            sent.append((str(app.send_task("maintenance.canary", kwargs={"sleep_seconds": sleep}).id), at))
        ids = [i for i, _ in sent]
        timeout = 30 + jobs * sleep * 2
        started = listener.wait_for(ids, "STARTED", timeout)
        done = listener.wait_for(ids, "SUCCESS", timeout)
    finally:
        listener.close()
    first = sent[0][1]
    waits = [started[i] - at for i, at in sent]
    return [at - first for _, at in sent], Figures.of(waits, max(done.values()) - first)


def predict(offsets: list[float], concurrency: int, sleep: float) -> Figures:
    scaling = QueueScaling(
        name=QUEUE, concurrency=concurrency, prefetch_multiplier=1, min_replicas=1, max_replicas=1, target=concurrency,
        activation=0, polling_interval=30, cooldown_period=300, grace_seconds=1830, behavior=DEFAULT_BEHAVIOR,
        autoscaled=False,
    )  # fmt: skip
    result = simulate(Model(scaling, durations.fixed(sleep), durations.fixed(0)), [Arrival(t) for t in offsets])
    return Figures.of(result.waits, result.drain_time)


def run_burst(
    url: str, env: dict[str, str], log_dir: Path, concurrency: int, jobs: int, sleep: float
) -> tuple[Figures, Figures]:
    """One worker of ``concurrency`` processes, one burst: (predicted, measured)."""
    worker = start_worker(QUEUE, env, log_dir, "--concurrency", str(concurrency))
    try:
        offsets, measured = measure(url, jobs, sleep)
    finally:
        worker.stop()
    return predict(offsets, concurrency, sleep), measured


def error(predicted: float, measured: float) -> float:
    return abs(predicted - measured) / measured if measured else abs(predicted - measured)


@contextmanager
def _own_fleet() -> Iterator[tuple[str, dict[str, str], Path]]:
    from tests.support.valkey_server import ValkeyServer

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = ValkeyServer(work / "valkey").start()
        env = {
            "REDIS_URL": server.url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{work / 'taskfleet.db'}",
            "BEAT_SCHEDULE_FILE": str(work / "celerybeat-schedule"),
        }
        try:
            with applied_env(env):
                yield server.url, {**os.environ, **env}, work
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"burst of {args.jobs} canary jobs, sleep_seconds {args.sleep:g}; predicted / measured (error)\n")
    print("| processes | run | drain s | wait p50 s | wait p95 s | wait p99 s |")
    print("|---|---|---|---|---|---|")
    with _own_fleet() as (url, env, work):
        for k in args.concurrency:
            for run in range(args.repeat):
                pred, meas = run_burst(url, env, work, k, args.jobs, args.sleep)
                cells = [
                    f"{getattr(pred, f):.2f} / {getattr(meas, f):.2f} ({error(getattr(pred, f), getattr(meas, f)):.0%})"
                    for f in ("drain", "p50", "p95", "p99")
                ]
                print(f"| {k} | {run + 1} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
