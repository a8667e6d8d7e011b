"""Real workers and Beats on their own Valkey database, with fast heartbeats, for the Kubernetes runtime tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from taskfleet_core import settings
from taskfleet_core.tasks.app import create_app


@pytest.fixture(scope="session", autouse=True)
def _fleet_env(fleet_env: dict[str, str]) -> None:
    """Every test of this suite runs against the session's servers and environment (tests/conftest.py)."""


#: A database index no other test uses: these tests count keys and list entries.
DB = 7


@pytest.fixture
def k8s_env(fleet_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    url = fleet_env["REDIS_URL"].rsplit("/", 1)[0] + f"/{DB}"
    redis.Redis.from_url(url).flushdb()
    yield {
        **fleet_env,
        "REDIS_URL": url,
        "WORKER_HEALTH_DIR": str(tmp_path / "health"),
        "WORKER_HEARTBEAT_INTERVAL_SECONDS": "0.5",
        "WORKER_HEARTBEAT_MAX_AGE_SECONDS": "3",
    }


@pytest.fixture
def db(k8s_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(k8s_env["REDIS_URL"], decode_responses=True)


def probe(env: dict[str, str], kind: str, name: str) -> subprocess.CompletedProcess[str]:
    """Run the probe exactly as the kubelet's exec probe does."""
    return subprocess.run(
        [sys.executable, "-m", "taskfleet_core.observability.probes", kind, "--name", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def producer(k8s_env, monkeypatch):  # type: ignore[no-untyped-def]
    """A Celery producer on the test database (settings are read once per process, hence the cache reset)."""
    monkeypatch.setenv("REDIS_URL", k8s_env["REDIS_URL"])
    settings.reload()
    yield create_app("test-k8s-producer")
    monkeypatch.undo()
    settings.reload()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(interval)
    return predicate()
