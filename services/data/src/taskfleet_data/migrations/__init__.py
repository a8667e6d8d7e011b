"""Alembic migrations shipped inside the data package, run programmatically.

``await upgrade(url)`` (or ``upgrade_sync(url)``) brings any database to head from
anywhere -- a worker, a test fixture, the local stack -- without an alembic.ini or
a particular working directory. Concurrent callers are serialised (PostgreSQL
advisory lock; a lock file next to a SQLite database), so every worker of a fresh
fleet may call it at start-up.

CLI use is possible too: ``alembic -x url=sqlite+aiosqlite:///var/taskfleet.db upgrade head``
with ``script_location = taskfleet_data:migrations`` (see ``alembic.ini`` next to this file).
"""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from taskfleet_core.tasks.async_bridge import run_async

import taskfleet_data.accounts  # noqa: F401 -- importing it registers the account tables on Base.metadata
import taskfleet_data.outbox.model  # noqa: F401 -- and the outbox table
from taskfleet_data.engine import engine_scope, sqlite_path
from taskfleet_data.models import Base

HERE = Path(__file__).parent
#: Arbitrary constant key of the PostgreSQL advisory lock taken around migrations.
ADVISORY_LOCK_KEY = 7_341_802_117


def metadata() -> MetaData:
    """Every mapped table of the fleet (what autogenerate compares against)."""
    return Base.metadata


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Leave the search index to its migrations: FTS5 / tsvector tables are not mapped models."""
    return not (type_ == "table" and name is not None and name.startswith("grant_search"))


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(config()).get_current_head()


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    command.upgrade(config(connection), revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(url: str) -> str | None:
    async with engine_scope(url) as engine, engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision``; a no-op when it is there already."""
    lock_path = sqlite_path(url)
    lock_file = None
    try:
        if lock_path is not None:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = open(lock_path.with_name(lock_path.name + ".migrate.lock"), "w")  # noqa: SIM115
            await asyncio.to_thread(fcntl.flock, lock_file, fcntl.LOCK_EX)  # waiting must not block the loop
        async with engine_scope(url) as engine, engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)
    finally:
        if lock_file is not None:  # also when cancelled while waiting for the lock: closing releases it
            lock_file.close()


class SchemaNotReady(RuntimeError):
    """The database is not at the code's head revision and this process is not the one to migrate it."""


async def wait_for_head(url: str, timeout: float, interval: float = 2.0) -> None:
    """Wait until the database at ``url`` is at head (a migration Job runs elsewhere); never migrates it."""
    head = head_revision()
    deadline = asyncio.get_running_loop().time() + timeout
    current: str | None = None
    while True:
        try:
            current = await current_revision(url)
        except Exception:  # noqa: BLE001 -- the database may not accept connections yet: keep waiting
            current = None
        if current == head:
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise SchemaNotReady(
                f"the database is at revision {current or 'none'}, not {head}, after {timeout:g} s: has the "
                "migration Job run? (DATABASE_MIGRATIONS=wait: services wait for the schema, they do not migrate)"
            )
        await asyncio.sleep(interval)


def upgrade_sync(url: str, revision: str = "head") -> None:
    run_async(lambda: upgrade(url, revision))
