"""Fleet worker vs bare Celery: throughput and memory on the same machine, in the same run.

    uv run python bench/bench_worker.py [--jobs 2000] [--concurrency 4]

Both workers consume the same kind of message from a fresh valkey-server and store the
same result; the difference is what the fleet adds per task (contract validation,
revocation check, rate-limit check, retry policy). Prints figures and their ratios;
absolute numbers depend on the machine, the ratios are the claim.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil
from celery import Celery

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.processes import ServiceProcess  # noqa: E402
from tests.support.valkey_server import ValkeyServer  # noqa: E402


def rss_mib(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def run(label: str, worker_cmd: list[str], task: str, jobs: int, env: dict[str, str], log: Path) -> dict[str, float]:
    producer = Celery("bench", broker=env["REDIS_URL"], backend=env["REDIS_URL"])
    producer.conf.update(task_serializer="json", accept_content=["json"], task_default_queue="default")
    proc = ServiceProcess(worker_cmd[0], log, env, tuple(worker_cmd[1:])).start(ready_marker="ready.")
    idle_rss = rss_mib(proc.process.pid)
    started = time.perf_counter()
    results = [producer.send_task(task, kwargs={"payload": {"i": i}}, queue="default") for i in range(jobs)]
    enqueued = time.perf_counter()
    for result in results:
        result.get(timeout=300)
    drained = time.perf_counter()
    busy_rss = rss_mib(proc.process.pid)
    proc.stop()
    figures = {
        "tasks_per_s": jobs / (drained - started),
        "enqueue_per_s": jobs / (enqueued - started),
        "idle_rss_mib": idle_rss,
        "busy_rss_mib": busy_rss,
    }
    print(
        f"{label:>6}: {figures['tasks_per_s']:8.1f} tasks/s  enqueue {figures['enqueue_per_s']:8.1f}/s  "
        f"RSS idle {idle_rss:6.1f} MiB  after load {busy_rss:6.1f} MiB"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis = ValkeyServer(work / "valkey").start()
        env = {
            **os.environ,
            "REDIS_URL": redis.url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{work}/db.sqlite",
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(Path(__file__).parent),
        }
        try:
            conc = ["--concurrency", str(args.concurrency)]
            bare = run(
                "bare",
                ["celery", "-A", "bare_app", "worker", "-Q", "default", "-l", "info", *conc],
                "bare.noop",
                args.jobs,
                env,
                work / "bare.log",
            )
            fleet = run(
                "fleet", ["taskfleet_worker_default", *conc], "maintenance.canary", args.jobs, env, work / "fleet.log"
            )
        finally:
            redis.stop()
    print(
        f"ratio fleet/bare: throughput {fleet['tasks_per_s'] / bare['tasks_per_s']:.2f}x, "
        f"memory after load {fleet['busy_rss_mib'] / bare['busy_rss_mib']:.2f}x "
        f"({args.jobs} jobs, concurrency {args.concurrency}, {os.cpu_count()} CPUs)"
    )


if __name__ == "__main__":
    main()
