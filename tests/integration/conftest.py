"""Fixtures for tests that run real workers and the API against the session's servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import API_TEST_TOKEN
from tests.support.processes import ServiceProcess, start_worker


@pytest.fixture(scope="session", autouse=True)
def _fleet_env(fleet_env: dict[str, str]) -> None:
    """Every test of this suite runs against the session's servers and environment (tests/conftest.py)."""


class WorkerPool:
    """Real prefork workers started on first use and stopped with the module (start-up costs seconds)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: dict[str, ServiceProcess] = {}

    def ensure(self, queue: str) -> ServiceProcess:
        if queue not in self.started:
            self.started[queue] = start_worker(queue, self.env, self.log_dir)
        return self.started[queue]

    def stop(self) -> None:
        for proc in self.started.values():
            proc.stop()


@pytest.fixture(scope="module")
def workers(fleet_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    pool = WorkerPool(fleet_env, tmp_path_factory.mktemp("worker-logs"))
    yield pool
    pool.stop()


@pytest.fixture(scope="module")
def api(fleet_env: dict[str, str]) -> Iterator[TestClient]:
    from taskfleet_api.main import create_api

    with TestClient(create_api(), headers={"Authorization": f"Bearer {API_TEST_TOKEN}"}) as client:
        yield client
