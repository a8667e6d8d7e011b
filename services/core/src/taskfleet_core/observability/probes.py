"""Cheap, truthful probes: files on local disk, never a round trip through the broker.

* liveness: ``<dir>/<name>.heartbeat``, refreshed by ``HeartbeatStep`` from the worker's own timer (the event
  loop that consumes), so a wedged main process stops refreshing it. This file is the worker's only heartbeat:
  the gauge ``taskfleet_worker_heartbeat_timestamp_seconds`` is its modification time read at scrape time
  (``metrics.HeartbeatCollector``), not a second timer, so the probe and the alert cannot disagree;
* the same timer writes the worker's heartbeat in Valkey (``reliability.reaper.WorkerHeartbeat``, TTL
  ``WORKER_LOST_SECONDS``): one heartbeat, written in two places; the reaper returns the in-flight messages of
  a worker whose Valkey heartbeat expired;
* readiness: ``<dir>/<name>.ready``, written on ``worker_ready`` and removed on ``worker_shutdown``.

``python -m taskfleet_core.observability.probes live|ready --name worker-email`` exits 0 when healthy and 1
with a reason otherwise: the Kubernetes exec probes. ``celery inspect ping`` costs seconds of CPU and fails on broker
outages a restart cannot fix (reference/keda_celery.md section 5), hence the files. The CLI path imports
neither Celery nor pydantic (about 0.05 s of CPU per probe instead of 0.9 s): it reads its three variables
straight from the environment, with the defaults of ``ProbeSettings`` (a test keeps them equal).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

#: Defaults of the matching ``ProbeSettings`` fields, for the CLI that does not load settings.
DEFAULT_HEALTH_DIR = "./var/health"
DEFAULT_MAX_AGE_SECONDS = 60.0


def health_dir() -> Path:
    return Path(os.environ.get("WORKER_HEALTH_DIR", DEFAULT_HEALTH_DIR))


def max_age_seconds() -> float:
    return float(os.environ.get("WORKER_HEARTBEAT_MAX_AGE_SECONDS", DEFAULT_MAX_AGE_SECONDS))


def worker_probe_name(queue: str) -> str:
    return f"worker-{queue}"


def heartbeat_path(name: str, directory: Path | None = None) -> Path:
    return (directory or health_dir()) / f"{name}.heartbeat"


def ready_path(name: str, directory: Path | None = None) -> Path:
    return (directory or health_dir()) / f"{name}.ready"


def touch(path: Path) -> None:
    """Write the current time atomically (a probe never reads a half-written file).

    The temporary file is this call's own (pid and a random part): two processes refreshing the same file (two
    Beats on one host, a restart overlapping its predecessor) never rename each other's temporary file away.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(f"{time.time():.3f}\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def last_beat(path: Path) -> float | None:
    """When the heartbeat file was last refreshed (unix seconds), or None before the first refresh."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def install(app: Celery) -> None:
    """Add the heartbeat bootstep and the ready-file signal handlers to a worker app.

    The step class is built here so that importing this module (the probe CLI) stays free of Celery.
    """
    # Imported here, not at the top: the probe CLI imports this module and must stay free of Celery and pydantic
    # (tests/runtime_k8s/test_worker_probes.py checks it); only a worker calls install().
    from celery import bootsteps
    from celery.signals import worker_ready, worker_shutdown

    from taskfleet_core.reliability.reaper import WorkerHeartbeat
    from taskfleet_core.settings import ProbeSettings, load

    settings = load(ProbeSettings)
    name = worker_probe_name(app.conf.taskfleet_queue)
    valkey_heartbeat = WorkerHeartbeat(app.conf.taskfleet_queue)

    def beat() -> None:
        touch(beat_file)  # first: a broker outage must not fail the liveness probe
        valkey_heartbeat.beat()

    beat_file = heartbeat_path(name, settings.worker_health_dir)
    ready_file = ready_path(name, settings.worker_health_dir)

    class HeartbeatStep(bootsteps.StartStopStep):
        """Refreshes the heartbeat from the worker's own timer; clears a ready file a previous run left."""

        requires = ("celery.worker.components:Timer",)

        def __init__(self, worker: Any, **kwargs: Any) -> None:
            super().__init__(worker, **kwargs)
            self.tref: Any = None

        def start(self, worker: Any) -> None:
            # An emptyDir outlives a container restart: a stale ready file must not make the new one ready.
            discard(ready_file)
            valkey_heartbeat.nodename = worker.hostname
            beat()
            interval = valkey_heartbeat.interval(settings.worker_heartbeat_interval_seconds)
            self.tref = worker.timer.call_repeatedly(interval, beat, priority=10)

        def stop(self, worker: Any) -> None:
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None
                valkey_heartbeat.stopping()  # a warm shutdown may still be finishing tasks

    app.steps["worker"].add(HeartbeatStep)

    @worker_ready.connect(weak=False)
    def _ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", app) is app:
            touch(ready_file)

    @worker_shutdown.connect(weak=False)
    def _not_ready(sender: Any = None, **_: Any) -> None:
        discard(ready_file)
        valkey_heartbeat.stopped()  # sent after the pool and the consumer stopped


def check(kind: str, name: str) -> tuple[bool, str]:
    """(healthy, reason) for ``live`` (fresh heartbeat) or ``ready`` (ready file and fresh heartbeat)."""
    max_age = max_age_seconds()
    beat = heartbeat_path(name)
    refreshed = last_beat(beat)
    if refreshed is None:
        return False, f"{beat} does not exist (not started yet?)"
    age = time.time() - refreshed
    if age > max_age:
        return False, f"{beat} is {age:.0f}s old (limit {max_age:.0f}s): the event loop is stuck"
    if kind == "ready" and not ready_path(name).exists():
        return False, f"{ready_path(name)} does not exist: not started yet, or shutting down"
    return True, f"{kind}: heartbeat {age:.1f}s old"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m taskfleet_core.observability.probes", description="Exit 0 when healthy."
    )
    parser.add_argument("kind", choices=["live", "ready"])
    parser.add_argument("--name", required=True, help="probe name: worker-<queue> or beat")
    args = parser.parse_args(argv)
    healthy, reason = check(args.kind, args.name)
    print(reason, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
