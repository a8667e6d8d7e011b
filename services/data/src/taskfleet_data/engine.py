"""SQLAlchemy 2 async engines, built inside the loop that uses them.

Engines hold connections bound to an event loop, so a task creates its engine
inside ``run_async``'s coroutine and disposes of it there (``engine_scope``).
Application code opens sessions with ``taskfleet_data.db``; this module is what
both it and the migrations build on.
SQLite gets WAL and a busy timeout: several prefork children of one worker write
to the same file, and a writer should wait for the lock rather than fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

#: Seconds a SQLite writer waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT = 30


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory or other backends)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url``; SQLite connections get WAL, busy timeout and foreign keys."""
    _ensure_sqlite_dir(url)
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


@asynccontextmanager
async def engine_scope(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def ping(url: str) -> str:
    """``SELECT 1``; returns the server's dialect name."""
    async with engine_scope(url) as engine, engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        return engine.dialect.name
