"""Pipeline fixtures: a real PostgreSQL, the recorded feed server, and a migrated database per test.

``database_url`` is parametrized: every test using it runs on SQLite and on PostgreSQL.
``feed_env`` points the adapters at the feed server (fast retries); it is also what a
sync worker subprocess gets in its environment.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from taskfleet_core import settings
from taskfleet_data.embeddings import get_embedder
from taskfleet_data.migrations import upgrade_sync

from tests.support.ports import free_port
from tests.support.processes import ServiceProcess


@pytest.fixture(scope="session", autouse=True)
def _fleet_env(fleet_env: dict[str, str]) -> None:
    """Every test of this suite runs against the session's servers and environment (tests/conftest.py)."""


SOURCES = ("cordis", "eu_portal", "iati", "gcf", "world_bank")


class FeedServer:
    """The ``taskfleet_grant_feeds`` process and its control API."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = ServiceProcess(
            "taskfleet_grant_feeds", log_dir / "grant-feeds.log", dict(os.environ), ("--port", str(self.port))
        )

    def env(self) -> dict[str, str]:
        return {
            "WORLD_BANK_API_URL": f"{self.base}/worldbank/api/v3/projects",
            "IATI_API_URL": f"{self.base}/iati/datastore",
            "IATI_API_KEY": "test-subscription-key",
            "GCF_API_URL": f"{self.base}/gcf/v1",
            "CORDIS_DATA_URL": f"{self.base}/cordis/data",
            "EU_PORTAL_API_URL": f"{self.base}/eu/search-api/prod/rest",
            "GRANT_HTTP_RETRIES": "2",
            "GRANT_HTTP_BACKOFF_SECONDS": "0.05",
            "GRANT_HTTP_TIMEOUT_SECONDS": "10",
        }

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        self._call("/_feeds/reset", {})

    def fail(self, source: str, times: int = -1, status: int = 500) -> None:
        self._call("/_feeds/fail", {"source": source, "times": times, "status": status})

    def edit(self, source: str, record_id: str, **changes: Any) -> None:
        self._call("/_feeds/edit", {"source": source, "id": record_id, "set": changes})

    def stats(self) -> dict[str, Any]:
        return self._call("/_feeds/stats")

    def duplicates(self) -> list[list[list[str]]]:
        return self._call("/_feeds/duplicates")


@pytest.fixture(scope="session")
def feed_server(session_dir: Path) -> Iterator[FeedServer]:
    server = FeedServer(session_dir)
    server.process.start(ready_marker="grant feeds serving", timeout=30)
    yield server
    server.process.stop()


@pytest.fixture
def feeds(feed_server: FeedServer) -> FeedServer:
    """The feed server with its recorded data restored and no failures injected."""
    feed_server.reset()
    return feed_server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'grants.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    upgrade_sync(url)
    return url


@pytest.fixture
def pipeline_env(
    feeds: FeedServer, database_url: str, monkeypatch: pytest.MonkeyPatch, fleet_env: dict[str, str]
) -> dict[str, str]:
    """This process (and any worker started with it) syncs from the feed server into ``database_url``."""
    env = {**feeds.env(), "DATABASE_URL": database_url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings.reload()
    get_embedder.cache_clear()
    yield {**fleet_env, **env}
    settings.reload()
