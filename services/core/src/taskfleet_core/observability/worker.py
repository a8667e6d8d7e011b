"""Metrics, traces and logs of a worker, hooked into Celery's process lifecycle.

* main process, before the pool forks (``celeryd_init``): empty the pod's multiprocess
  directory and serve the merged metrics on ``METRICS_PORT``;
* each prefork child (``worker_process_init``): start tracing, since the exporter's
  thread does not survive fork; on ``worker_process_shutdown`` flush its spans and mark
  it dead so its live gauges leave the merged view;
* solo/threads pools have no children: tracing starts in the main process instead.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, signals

from taskfleet_core.observability import logs, metrics, probes, task_metrics, tracing
from taskfleet_core.settings import ObservabilitySettings, ProbeSettings, load

log = logging.getLogger(__name__)

_queue: dict[str, str] = {}


def instrument(app: Celery, queue: str) -> None:
    if _queue:
        return
    _queue["name"] = queue
    tracing.instrument_libraries()  # before the task modules import SQLAlchemy & co.
    task_metrics.instrument_worker(app, queue)
    signals.celeryd_init.connect(_main_init, weak=False)
    signals.worker_init.connect(_worker_init, weak=False)
    signals.worker_process_init.connect(_child_init, weak=False)
    signals.worker_process_shutdown.connect(_child_shutdown, weak=False)
    signals.after_setup_logger.connect(_json_logs, weak=False)
    signals.after_setup_task_logger.connect(_json_logs, weak=False)


def _main_init(sender: str = "", **_: Any) -> None:
    task_metrics.set_nodename(sender)
    settings = load(ObservabilitySettings)
    if settings.metrics_port is None:
        return
    queue = _queue["name"]
    path = metrics.enable_multiprocess(metrics.default_worker_dir(queue))
    registry = metrics.multiprocess_registry(path)
    heartbeat = probes.heartbeat_path(probes.worker_probe_name(queue), load(ProbeSettings).worker_health_dir)
    registry.register(metrics.HeartbeatCollector(heartbeat, sender, queue))  # the probe file, not a second timer
    metrics.serve(settings.metrics_port, settings.metrics_addr, registry)


def _is_prefork(worker: Any) -> bool:
    pool = getattr(worker, "pool_cls", None)
    return "prefork" in f"{getattr(pool, '__module__', '')}{pool}".lower()


def _worker_init(sender: Any = None, **_: Any) -> None:
    if not _is_prefork(sender):
        _start_tracing()


def _child_init(**_: Any) -> None:
    _start_tracing()


def _start_tracing() -> None:
    if tracing.configure(f"taskfleet-worker-{_queue['name']}"):
        # after the Celery instrumentation's own prerun handler, so its span is the current one
        signals.task_prerun.connect(_annotate, weak=False)


def _annotate(task: Any = None, **_: Any) -> None:
    tracing.annotate_task(task)


def _child_shutdown(**_: Any) -> None:
    tracing.flush()
    path = metrics.multiprocess_dir()
    if path is not None:
        metrics.mark_process_dead(os.getpid(), path)


def _json_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is not None and logs.json_enabled():
        logs.use_json([logger], f"taskfleet-worker-{_queue['name']}")
