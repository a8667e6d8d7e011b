"""Sessions on a migrated database: what application code uses to reach the data.

``async with database(url) as sessions`` migrates the database at ``url`` to head the
first time this process asks for it (then remembers it has), opens a fresh engine and
yields a session factory; the engine is disposed of on exit, so it never outlives the
``run_async`` loop it was built on. ``session_for(url)`` is the one-session shorthand.

Workers of a fresh fleet may all start migrating at once: ``migrations.upgrade`` takes a
cross-process lock (PostgreSQL advisory lock, a lock file next to a SQLite database), so
the first one migrates and the others find the database at head. In a deployment the chart's
migration Job migrates and sets ``DATABASE_MIGRATIONS=wait``: services then only wait for
the schema, so no pod ever runs DDL against a database other pods are using.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from taskfleet_core.settings import load

from taskfleet_data.engine import create_engine
from taskfleet_data.settings import DataSettings

#: URLs this process has migrated to head already.
_migrated: set[str] = set()


async def migrated_engine(url: str) -> AsyncEngine:
    """A new engine on the database at ``url``, migrated to head first (once per process and URL).

    The caller disposes of it; for an engine that lives as long as the process (the API's).
    """
    if url not in _migrated:
        # Alembic is imported on first use, not at start-up: a worker scaled from zero gets ready sooner.
        from taskfleet_data import migrations

        settings = load(DataSettings)
        if settings.database_migrations == "wait":
            await migrations.wait_for_head(url, settings.database_schema_wait_seconds)
        else:
            await migrations.upgrade(url)
        _migrated.add(url)
    return create_engine(url)


@asynccontextmanager
async def database(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on the migrated database at ``url``; its engine is disposed of on exit."""
    engine = await migrated_engine(url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


@asynccontextmanager
async def session_for(url: str) -> AsyncIterator[AsyncSession]:
    """One session on the migrated database at ``url`` (``database(url)`` for several)."""
    async with database(url) as sessions, sessions() as session:
        yield session
