"""A small fleet per test module and backend: SQLite and PostgreSQL, real workers, the real API.

Each (module, backend) gets a fresh database migrated to head, its own Valkey database (so
its queues, locks and the email queue's fleet-wide rate-limit window are its own), workers
started on first use, and the API in this process pointed at the same database and Valkey.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from taskfleet_api.main import create_api
from taskfleet_data.migrations import upgrade_sync

from tests.conftest import API_TEST_TOKEN
from tests.integration.conftest import WorkerPool
from tests.support.environment import applied_env
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session", autouse=True)
def _fleet_env(fleet_env: dict[str, str]) -> None:
    """Every test of this suite runs against the session's servers and environment (tests/conftest.py)."""


BACKENDS = ["sqlite", "postgresql"]
_valkey_dbs = iter(range(1, 16))


class Fleet:
    def __init__(self, backend: str, database_url: str, env: dict[str, str], log_dir: Path) -> None:
        self.backend = backend
        self.database_url = database_url
        self.env = env
        self.workers = WorkerPool(env, log_dir)
        self.redis = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
        self.api: TestClient | None = None

    def submit(self, task: str, **kwargs: object) -> str:
        assert self.api is not None
        response = self.api.post("/api/v1/jobs", json={"task": task, "kwargs": kwargs})
        assert response.status_code == 202, response.text
        return response.json()["id"]


@pytest.fixture(scope="module", params=BACKENDS)
def fleet(
    request: pytest.FixtureRequest,
    fleet_env: dict[str, str],
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    backend = request.param
    if backend == "sqlite":
        database_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'matching.db'}"
    else:
        database_url = request.getfixturevalue("postgres_server").create_database()
    upgrade_sync(database_url)
    redis_url = redis_server.url.rsplit("/", 1)[0] + f"/{next(_valkey_dbs)}"
    redis.Redis.from_url(redis_url).flushdb()
    env = {**fleet_env, "DATABASE_URL": database_url, "REDIS_URL": redis_url}

    fleet = Fleet(backend, database_url, env, tmp_path_factory.mktemp(f"logs-{backend}"))
    with (
        applied_env({"DATABASE_URL": database_url, "REDIS_URL": redis_url}),
        TestClient(create_api(), headers={"Authorization": f"Bearer {API_TEST_TOKEN}"}) as client,
    ):
        fleet.api = client
        try:
            yield fleet
        finally:
            fleet.workers.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
