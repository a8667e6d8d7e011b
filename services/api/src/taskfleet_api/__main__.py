"""``python -m taskfleet_api``: the API server, several processes on one port.

One uvicorn process serves one request at a time in Python; submitting a job is CPU in the API (validation,
FastAPI, Celery's message building) plus two Valkey round trips, so throughput scales with processes, not
threads. ``API_WORKERS`` (default: the CPUs this process may use) uvicorn workers share the listening socket;
each builds its app, its Celery producer pool and its Valkey client once, at start. With more than one worker
the metrics are kept in prometheus-client's multiprocess files, so ``/metrics`` on any worker shows them all.
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from taskfleet_core.observability import metrics


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m taskfleet_api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("API_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("API_WORKERS", "0")) or default_workers())
    parser.add_argument("--access-log", action="store_true", help="uvicorn's access log (request metrics cover it)")
    args = parser.parse_args(argv)
    if args.workers > 1:
        metrics.enable_multiprocess(metrics.default_worker_dir("api"))  # before the workers import the metrics
    uvicorn.run(
        "taskfleet_api.main:create_api",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=args.access_log,
    )


if __name__ == "__main__":
    main()
