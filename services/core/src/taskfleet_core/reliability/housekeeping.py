"""Fleet housekeeping: small periodic jobs that any live fleet process may run, all at once, safely.

Promoting due delayed work onto its queue and returning a dead worker's in-flight messages must happen
even when a queue's Deployment is scaled to zero, and must never depend on one particular process. So every
worker runs them from its own event-loop timer (``install_worker``) and Beat runs them from a thread
(``start_thread``), leader or standby alike. Each job is written to be safe when several processes run it at
the same moment (one Lua script, or a WATCH transaction, per item).

A job registers itself with ``@every(seconds)`` in the module that owns it; this module only schedules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

log = logging.getLogger("taskfleet.housekeeping")

Job = Callable[[redis.Redis], object]


@dataclass
class _Registered:
    name: str
    interval: float
    job: Job
    next_run: float = 0.0


_JOBS: dict[str, _Registered] = {}


def every(seconds: float, name: str | None = None) -> Callable[[Job], Job]:
    """Register ``job(client)`` to run about every ``seconds`` in every process that does housekeeping."""

    def register(job: Job) -> Job:
        key = name or f"{job.__module__}.{job.__qualname__}"
        _JOBS[key] = _Registered(key, seconds, job)
        return job

    return register


def run_due(client: redis.Redis, now: float | None = None) -> None:
    """Run every registered job whose interval has passed. Never raises: housekeeping must not stop a worker."""
    now = time.monotonic() if now is None else now
    for registered in list(_JOBS.values()):
        if now < registered.next_run:
            continue
        registered.next_run = now + registered.interval
        try:
            registered.job(client)
        except redis.RedisError as exc:  # the broker is away: the next round tries again
            log.warning("housekeeping %s: %s", registered.name, exc)
        except Exception:
            log.exception("housekeeping %s failed", registered.name)


#: How often a process looks for due housekeeping (each job keeps its own interval).
TICK_SECONDS = 1.0


def install_worker(app: Any, client: Callable[[], redis.Redis]) -> None:
    """Run housekeeping from a worker's own timer (the event loop that consumes), once it has started."""
    from celery import bootsteps  # the probe CLI imports this package without Celery: keep it out of module scope

    class HousekeepingStep(bootsteps.StartStopStep):
        requires = ("celery.worker.components:Timer",)

        def __init__(self, worker: Any, **kwargs: Any) -> None:
            super().__init__(worker, **kwargs)
            self.tref: Any = None

        def start(self, worker: Any) -> None:
            self.tref = worker.timer.call_repeatedly(TICK_SECONDS, lambda: run_due(client()), priority=5)

        def stop(self, worker: Any) -> None:
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None

    app.steps["worker"].add(HousekeepingStep)


def start_thread(client: Callable[[], redis.Redis], stop: threading.Event | None = None) -> threading.Thread:
    """Run housekeeping in a daemon thread (Beat), until ``stop`` is set."""
    stopped = stop or threading.Event()

    def loop() -> None:
        while not stopped.wait(TICK_SECONDS):
            run_due(client())

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()
    return thread
