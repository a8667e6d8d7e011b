"""``DATABASE_MIGRATIONS=wait``: a service waits for the migration Job's schema and never migrates itself."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from taskfleet_core import settings
from taskfleet_data import db
from taskfleet_data.migrations import SchemaNotReady, current_revision, head_revision, upgrade_sync


@pytest.fixture
def waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_MIGRATIONS", "wait")
    monkeypatch.setenv("DATABASE_SCHEMA_WAIT_SECONDS", "30")
    settings.reload()
    yield
    monkeypatch.undo()
    settings.reload()


def test_a_waiting_service_uses_the_schema_once_the_job_has_migrated(tmp_path: Path, waiting: None) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}"
    job = threading.Timer(2.0, upgrade_sync, args=(url,))  # the migration Job, finishing a little later
    job.start()
    try:
        engine = asyncio.run(db.migrated_engine(url))
        asyncio.run(engine.dispose())
    finally:
        job.join()
    assert asyncio.run(current_revision(url)) == head_revision()


def test_a_waiting_service_never_migrates_and_says_why(
    tmp_path: Path, waiting: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_SCHEMA_WAIT_SECONDS", "1")  # how long it waits is not what this checks
    settings.reload()
    url = f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}"
    with pytest.raises(SchemaNotReady, match="has the migration Job run"):
        asyncio.run(db.migrated_engine(url))
    assert asyncio.run(current_revision(url)) is None, "the service ran no DDL"
