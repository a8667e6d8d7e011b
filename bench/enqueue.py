"""One producer process, for the suite: publish jobs and print what it cost as JSON on stdout.

    python bench/enqueue.py fleet|bare --jobs N [--rate R] [--queue default]

``fleet`` is the path the API takes (``taskfleet_api.producer.publish``): the fleet's app (``create_app``: its
transport, routing and the publish-time stamp of ``task_metrics``) with the job record in the publish's round trip.
``bare`` is ``send_task`` on a bare Celery app
with the same broker settings. With ``--rate`` the jobs are paced and each job's id and send time are printed,
for the enqueue -> start latency. The process's own CPU is reported (``time.process_time``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

TASK = {"fleet": "maintenance.canary", "bare": "bare.noop"}


def sender(kind: str) -> Any:
    if kind == "fleet":
        from taskfleet_api.producer import publish
        from taskfleet_core.observability import task_metrics

        task_metrics.instrument_producer("api", count_jobs=True)

        def send_fleet(i: int) -> str:
            return publish(TASK["fleet"], "default", {"payload": {"i": i}})

        return send_fleet

    from celery import Celery

    url = os.environ["REDIS_URL"]
    bare = Celery("bench-bare-producer", broker=url, backend=url)
    bare.conf.update(task_serializer="json", accept_content=["json"], task_default_queue="default")

    def send_bare(i: int) -> str:
        return str(bare.send_task(TASK["bare"], kwargs={"payload": {"i": i}}, queue="default").id)

    return send_bare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=sorted(TASK))
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args()
    send = sender(args.kind)
    send(-1)  # connect, declare: not part of the figure
    sent: list[tuple[str, float]] = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(args.jobs):
        if args.rate:
            due = t0 + i / args.rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        at = time.time()
        sent.append((send(i), at))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    out = {"jobs": args.jobs, "per_s": args.jobs / wall, "cpu_ms_per_job": cpu * 1000 / args.jobs}
    if args.rate:
        out["sent"] = sent
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
