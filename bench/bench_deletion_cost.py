"""Busy-aware scale-in: how many pod PATCHes a worker makes under bursty work, and what the client costs in memory.

    uv run python bench/bench_deletion_cost.py [--seconds 180] [--interval 15] [--concurrency 4] [--gaps 10,40]

A real default-queue worker (prefork, fresh valkey-server) runs bursts of ``maintenance.canary`` jobs of random
length, separated by idle gaps, while it keeps its pod's pod-deletion-cost current against the schema-checked
pods PATCH endpoint of tests/support/kube_api.py (no API server runs here). Prints the PATCHes it sent, per pod
and minute, the projection to 100 pods, the naive alternative (one PATCH per task start and end), and the main
process's RSS with the feature on and off.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import psutil
from celery import Celery

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.kube_api import KubeApi  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402
from tests.support.valkey_server import ValkeyServer  # noqa: E402
from tests.tls.test_valkey_tls import make_pki  # noqa: E402

NAMESPACE, POD = "fleet", "tf-taskfleet-worker-default-bench"
COST = "controller.kubernetes.io/pod-deletion-cost"


def main_rss_mib(proc: ServiceProcess) -> float:
    assert proc.process is not None
    return psutil.Process(proc.process.pid).memory_info().rss / 2**20


def measure(
    args: argparse.Namespace,
    rng: random.Random,
    gaps: tuple[float, ...],
    work: Path,
    api: KubeApi,
    pki: dict[str, Path],
    redis: ValkeyServer,
) -> tuple[float, int, float, float]:
    """Run the bursts on a worker with the feature on, then start one with it off; (seconds, tasks, RSS on, RSS off)."""
    env = {
        **os.environ,
        "REDIS_URL": redis.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{work}/db.sqlite",
        "WORKER_HEALTH_DIR": str(work / "health"),
        "DELETION_COST_ENABLED": "true",
        "DELETION_COST_KUBECONFIG": str(api.kubeconfig(work / "kubeconfig", pki["ca.crt"])),
        "DELETION_COST_MIN_INTERVAL_SECONDS": str(args.interval),
        "POD_NAME": POD,
        "POD_NAMESPACE": NAMESPACE,
    }
    conc = ("--concurrency", str(args.concurrency))
    worker = ServiceProcess("taskfleet_worker_default", work / "on.log", env, conc).start("ready.")
    producer = Celery("bench", broker=redis.url, backend=redis.url)
    producer.conf.update(task_serializer="json", accept_content=["json"])
    try:
        started, tasks, results = time.monotonic(), 0, []
        while time.monotonic() - started < args.seconds:
            burst = rng.randint(1, 2 * args.concurrency)
            for _ in range(burst):
                kwargs = {"sleep_seconds": round(rng.uniform(1, 20), 1)}
                results.append(producer.send_task("maintenance.canary", kwargs=kwargs, queue="default"))
            tasks += burst
            time.sleep(rng.uniform(*gaps))  # the gap: the pod drains and goes idle, or not
        for result in results:
            result.get(timeout=120)
        time.sleep(args.interval + 2)  # the last turn to idle goes out
        elapsed = time.monotonic() - started
        on_rss = main_rss_mib(worker)
    finally:
        worker.stop()
    off = ServiceProcess(
        "taskfleet_worker_default", work / "off.log", {**env, "DELETION_COST_ENABLED": "false"}, conc
    ).start("ready.")
    time.sleep(3)
    off_rss = main_rss_mib(off)
    off.stop()
    return elapsed, tasks, on_rss, off_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--interval", type=float, default=15, help="DELETION_COST_MIN_INTERVAL_SECONDS")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--gaps", default="10,40", help="seconds between bursts, min,max (8,12: rarely idle)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    gaps = tuple(float(x) for x in args.gaps.split(","))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pki = make_pki(work / "pki")
        api = KubeApi(pki["server.crt"], pki["server.key"]).start()
        api.add_pod(NAMESPACE, POD)
        redis = ValkeyServer(work / "valkey").start()
        try:
            elapsed, tasks, on_rss, off_rss = measure(args, rng, gaps, work, api, pki, redis)
        finally:
            redis.stop()
            api.stop()

    values = [int(p.annotations[COST] or 0) for p in api.patches]
    arrivals = [p.at for p in api.patches]
    spacing = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    turns = sum(1 for a, b in zip(values, values[1:], strict=False) if (a == 0) != (b == 0))
    per_minute = len(values) / (elapsed / 60)
    naive = 2 * tasks / (elapsed / 60)
    print(f"{tasks} tasks in {elapsed:.0f} s, concurrency {args.concurrency}, interval {args.interval:.0f} s")
    print(
        f"PATCHes: {len(values)} ({turns} idle/busy turns), {per_minute:.1f} per pod-minute; "
        f"schema violations: {len(api.violations)}"
    )
    print(f"  smallest gap {min(spacing):.1f} s, values sent: {values}")
    print(
        f"  at 100 pods: {per_minute * 100 / 60:.1f} PATCH/s "
        f"(one per task start and end would be {naive * 100 / 60:.1f}/s)"
    )
    print(f"main-process RSS after the run: on {on_rss:.1f} MiB, off (idle) {off_rss:.1f} MiB")


if __name__ == "__main__":
    main()
