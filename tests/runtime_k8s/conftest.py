"""Real workers and Beats on their own Valkey database, with fast heartbeats, for the Kubernetes runtime tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

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
        [sys.executable, "-m", "taskfleet_core.probes", kind, "--name", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
