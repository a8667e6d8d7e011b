"""One observed fleet per module: a real worker, the API (uvicorn), the queue exporter and Beat as
subprocesses, an OTLP/HTTP sink for their spans and a real Prometheus scraping all of them every second,
with a copy of the alert rules whose ``for:`` is 0 s. Started once: process start-up dominates the cost.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.conftest import API_TEST_TOKEN
from tests.observability.otlp_sink import OtlpSink
from tests.observability.prometheus import Prometheus
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.reference import REPO_ROOT


@pytest.fixture(scope="session", autouse=True)
def _fleet_env(fleet_env: dict[str, str]) -> None:
    """Every test of this suite runs against the session's servers and environment (tests/conftest.py)."""


AUTH = {"Authorization": f"Bearer {API_TEST_TOKEN}"}
OBSERVABILITY_DIR = REPO_ROOT / "infra" / "observability"


def infra_module(name: str) -> ModuleType:
    """``dashboards``, ``rules``, ``alert_tests`` or ``generate`` from infra/observability."""
    if str(OBSERVABILITY_DIR) not in sys.path:
        sys.path.insert(0, str(OBSERVABILITY_DIR))
    return importlib.import_module(name)


@dataclass
class Fleet:
    api_url: str
    worker: ServiceProcess
    api: ServiceProcess
    exporter: ServiceProcess
    beat: ServiceProcess
    prometheus: Prometheus
    sink: OtlpSink

    def submit(self, task: str, **body: Any) -> httpx.Response:
        return httpx.post(f"{self.api_url}/api/v1/jobs", json={"task": task, **body}, headers=AUTH, timeout=10)

    def job(self, job_id: str) -> dict[str, Any]:
        return httpx.get(f"{self.api_url}/api/v1/jobs/{job_id}", headers=AUTH, timeout=10).json()

    def wait_job(self, job_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in {"SUCCESS", "FAILURE", "REVOKED"} or time.monotonic() > deadline:
                return job
            time.sleep(0.1)


@pytest.fixture(scope="module")
def fleet(fleet_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("observed-fleet")
    _empty_the_queues(fleet_env["REDIS_URL"])  # earlier suites' leftovers would raise alerts of their own
    sink = OtlpSink().start()
    ports = {name: free_port() for name in ("api", "worker", "exporter", "beat")}
    env = {
        **fleet_env,
        "METRICS_ADDR": "127.0.0.1",
        "LOG_FORMAT": "json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_TRACES_SAMPLER": "always_on",
        "WORKER_HEALTH_DIR": str(root / "health"),
        "BEAT_CANARY_INTERVAL_SECONDS": "2",
        "BEAT_SCHEDULE_FILE": str(root / "celerybeat-schedule"),
        "BEAT_LOCK_TTL_SECONDS": "5",
    }
    started: list[Any] = [sink]
    try:
        worker = ServiceProcess(
            "taskfleet_worker_default",
            root / "worker.log",
            {**env, "METRICS_PORT": str(ports["worker"]), "PROMETHEUS_MULTIPROC_DIR": str(root / "metrics-default")},
            ("--concurrency", "3"),
        )
        started.append(worker.start("ready."))
        api = ServiceProcess(
            "uvicorn",
            root / "api.log",
            env,
            ("--factory", "taskfleet_api.main:create_api", "--host", "127.0.0.1", "--port", str(ports["api"])),
        )
        started.append(api.start("Application startup complete"))
        exporter = ServiceProcess(
            "taskfleet_queue_exporter", root / "exporter.log", {**env, "METRICS_PORT": str(ports["exporter"])}
        )
        started.append(exporter.start("queue exporter ready"))
        beat = ServiceProcess("taskfleet_beat", root / "beat.log", {**env, "METRICS_PORT": str(ports["beat"])})
        started.append(beat.start("beat: Starting"))
        rules = infra_module("rules").rules_file(for_override="0s")
        prometheus = Prometheus(
            root / "prometheus",
            {
                "taskfleet-api": [f"127.0.0.1:{ports['api']}"],
                "taskfleet-worker": [f"127.0.0.1:{ports['worker']}"],
                "taskfleet-queue-exporter": [f"127.0.0.1:{ports['exporter']}"],
                "taskfleet-beat": [f"127.0.0.1:{ports['beat']}"],
            },
            rules,
        )
        started.append(prometheus.start())
        yield Fleet(f"http://127.0.0.1:{ports['api']}", worker, api, exporter, beat, prometheus, sink)
    finally:
        for thing in reversed(started):
            thing.stop()
        _empty_the_queues(fleet_env["REDIS_URL"])


def _empty_the_queues(url: str) -> None:
    """The session's Valkey is shared: start from empty queues, and drop what this module left waiting (matching
    has no consumer) for the suites after it."""
    import redis
    from taskfleet_core.tasks.queues import QUEUES

    client = redis.Redis.from_url(url)
    for spec in QUEUES.values():
        client.delete(*spec.waiting_lists(), spec.unacked_index_key, spec.unacked_key)


def log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []
