"""The outbox tests' small fleet (tests/integration/test_outbox_*.py): per module and backend (SQLite,
PostgreSQL) a fresh migrated database with grants to match, its own valkey-server (a test stops it), workers
started on demand, and the API in this process with its own relay switched off (each test runs the relays it
needs)."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from taskfleet_api.outbox import FleetPublisher
from taskfleet_data.db import session_for
from taskfleet_data.migrations import upgrade_sync
from taskfleet_data.outbox import OutboxMessage, Relay, RelayThread
from taskfleet_data.outbox.settings import OutboxSettings

from tests.conftest import API_TEST_TOKEN
from tests.integration.conftest import WorkerPool
from tests.matching.fixtures import seed_world
from tests.support.environment import applied_env
from tests.support.valkey_server import ValkeyServer

BACKENDS = ["sqlite", "postgresql"]


class OutboxFleet:
    def __init__(self, backend: str, database_url: str, valkey: ValkeyServer, workers: WorkerPool) -> None:
        self.backend = backend
        self.database_url = database_url
        self.valkey = valkey
        self.workers = workers
        self.api: TestClient | None = None

    def relay(self, publisher: Any = None, **settings: Any) -> Relay:
        values = {"outbox_poll_seconds": 0.5, "outbox_batch_size": 50, **settings}
        return Relay(self.database_url, publisher or FleetPublisher(), OutboxSettings(**values))

    @contextmanager
    def running(self, *relays: Relay) -> Iterator[None]:
        threads = [RelayThread(r).start() for r in relays]
        try:
            yield
        finally:
            for thread in threads:
                thread.stop()

    def rows(self, *job_ids: str) -> list[OutboxMessage]:
        async def read() -> list[OutboxMessage]:
            async with session_for(self.database_url) as session:
                query = select(OutboxMessage).where(OutboxMessage.job_id.in_(job_ids))
                return list((await session.execute(query)).scalars())

        return asyncio.run(read())

    def waiting_for(self, task: str, recipient: str) -> int:
        """Rows of ``task`` for ``recipient`` (an email's ``to``), sent or not."""

        async def rows() -> list[OutboxMessage]:
            async with session_for(self.database_url) as session:
                return list((await session.execute(select(OutboxMessage).where(OutboxMessage.task == task))).scalars())

        return sum(1 for row in asyncio.run(rows()) if recipient in row.kwargs.get("to", []))

    def waiting(self) -> int:
        async def count() -> int:
            async with session_for(self.database_url) as session:
                query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
                return int((await session.execute(query)).scalar_one())

        return asyncio.run(count())


def start_fleet(
    request: pytest.FixtureRequest, fleet_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OutboxFleet]:
    """The body of each outbox test module's ``fleet`` fixture (module scope, parametrized by ``BACKENDS``)."""
    backend = request.param
    if backend == "sqlite":
        database_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'outbox.db'}"
    else:
        database_url = request.getfixturevalue("postgres_server").create_database()
    upgrade_sync(database_url)
    asyncio.run(seed_world(database_url, uuid.uuid4().hex[:8]))  # grants to match against
    valkey = ValkeyServer(tmp_path_factory.mktemp("valkey")).start()  # its own: one test stops it
    # the relay the API would run is off here: each test starts the relays it needs
    overrides = {"DATABASE_URL": database_url, "REDIS_URL": valkey.url, "OUTBOX_RELAY_ENABLED": "false"}
    workers = WorkerPool({**fleet_env, **overrides}, tmp_path_factory.mktemp(f"logs-{backend}"))
    fleet = OutboxFleet(backend, database_url, valkey, workers)
    with applied_env(overrides), api_client() as api:
        fleet.api = api
        try:
            yield fleet
        finally:
            workers.stop()
            gc.collect()  # Celery's leftover AsyncResults talk to Valkey when finalised: while it still runs
            valkey.stop()


def api_client() -> TestClient:
    from taskfleet_api.main import create_api

    return TestClient(create_api(), headers={"Authorization": f"Bearer {API_TEST_TOKEN}"})


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def queued_ids(fleet: OutboxFleet, queue: str) -> Counter[str]:
    """Job ids of the messages waiting in a queue's lists in Valkey (kombu's envelopes)."""
    client = redis.Redis.from_url(fleet.valkey.url, decode_responses=True)
    ids: Counter[str] = Counter()
    for key in client.keys(f"{queue}*"):
        if client.type(key) == "list":
            ids.update(json.loads(raw)["headers"]["id"] for raw in client.lrange(key, 0, -1))
    client.close()
    return ids


def succeeded(worker_log: str, task: str) -> Counter[str]:
    return Counter(re.findall(rf"Task {re.escape(task)}\[([0-9a-f-]+)\] succeeded", worker_log))
