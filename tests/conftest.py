"""Session-wide real servers: redis-server and an SMTP server on loopback ports.

The environment is set before any service module reads its settings, so API,
workers and Beat in the tests all talk to these servers.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.environment import applied_env
from tests.support.postgres import PostgresServer
from tests.support.processes import ServiceProcess, start_worker
from tests.support.redis_server import RedisServer
from tests.support.smtp_server import SmtpServer

#: The bearer token the tests' API clients send.
API_TEST_TOKEN = "test-token-0123456789"


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fleet")


@pytest.fixture(scope="session")
def redis_server(session_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(session_dir / "redis").start()
    yield server
    # Celery's AsyncResult.__del__ talks to the broker: let the leftovers finalise while it still runs.
    gc.collect()
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL, started on first use and shared by every suite that runs on it."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def fleet_env(redis_server: RedisServer, smtp_server: SmtpServer, session_dir: Path) -> Iterator[dict[str, str]]:
    """The environment every fleet process of the session sees (also applied to this process)."""
    env = {
        "REDIS_URL": redis_server.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{session_dir / 'taskfleet.db'}",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
        "SMTP_TIMEOUT_SECONDS": "5",
        "BEAT_SCHEDULE_FILE": str(session_dir / "celerybeat-schedule"),
        "API_TOKENS": f"{API_TEST_TOKEN},rotated-out-token",  # mutating API calls need one (taskfleet_api.auth)
    }
    with applied_env(env):
        yield {**os.environ, **env}


@pytest.fixture
def redis_client(redis_server: RedisServer):
    import redis

    return redis.Redis.from_url(redis_server.url, decode_responses=True)


@pytest.fixture
def worker_factory(fleet_env: dict[str, str], tmp_path: Path) -> Iterator:
    """Start real workers: ``worker_factory("email")``; all are stopped after the test."""
    started: list[ServiceProcess] = []

    def start(queue: str, *extra: str, env: dict[str, str] | None = None) -> ServiceProcess:
        proc = start_worker(queue, {**fleet_env, **(env or {})}, tmp_path, *extra)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
