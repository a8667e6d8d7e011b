"""Session-wide real servers, started on first use: valkey-server and an SMTP server on loopback ports.

``fleet_env`` starts them and applies their environment before any service module reads its settings,
so API, workers and Beat in the tests all talk to these servers. It is opt-in: the suites that run
against real servers request it for all their tests (their conftest), unit and chart tests start none
(``_serverless`` below checks it).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import valkey_server
from tests.support.environment import applied_env
from tests.support.postgres import PostgresServer
from tests.support.processes import ServiceProcess, start_worker
from tests.support.smtp_server import SmtpServer
from tests.support.valkey_server import ValkeyServer

#: The bearer token the tests' API clients send.
API_TEST_TOKEN = "test-token-0123456789"


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fleet")


@pytest.fixture(scope="session")
def redis_server(session_dir: Path) -> Iterator[ValkeyServer]:
    """The session's valkey-server (the fixture keeps the protocol's name: ``REDIS_URL``, redis-py)."""
    server = ValkeyServer(session_dir / "valkey").start()
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


@pytest.fixture(scope="session")
def fleet_env(redis_server: ValkeyServer, smtp_server: SmtpServer, session_dir: Path) -> Iterator[dict[str, str]]:
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
def redis_client(redis_server: ValkeyServer):
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


#: Suites whose tests must run without any server process.
SERVERLESS_SUITES = ("unit", "chart")
SERVER_FIXTURES = {"redis_server", "smtp_server", "postgres_server", "fleet_env", "worker_factory", "redis_client"}
SERVER_BINARIES = {"valkey-server", "redis-server", "postgres", "prometheus"}


def _suite(item: pytest.Item) -> str:
    parts = Path(str(item.path)).relative_to(Path(__file__).parent).parts
    return parts[0] if len(parts) > 1 else ""


def _server_children() -> list[str]:
    import psutil

    names = []
    for child in psutil.Process().children(recursive=True):
        try:
            names.append(child.name())
        except psutil.NoSuchProcess:
            continue
    return [name for name in names if name in SERVER_BINARIES]


@pytest.fixture(autouse=True)
def _serverless(request: pytest.FixtureRequest) -> Iterator[None]:
    """Unit and chart tests request no server fixture; when only they run, no server process exists at all."""
    if _suite(request.node) not in SERVERLESS_SUITES:
        yield
        return
    requested = SERVER_FIXTURES & set(request.fixturenames)
    assert not requested, f"a {_suite(request.node)} test must not start servers; it requests {sorted(requested)}"
    yield
    if all(_suite(item) in SERVERLESS_SUITES for item in request.session.items):
        assert not valkey_server.started, "a valkey-server was started in a unit/chart-only run"
        assert not _server_children(), f"server processes running in a unit/chart-only run: {_server_children()}"
