"""Database access: SQLAlchemy 2 async engines, built inside the loop that uses them.

Engines hold connections bound to an event loop, so a task creates its engine
inside ``run_async``'s coroutine and disposes of it there (``engine_scope``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def _ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


@asynccontextmanager
async def engine_scope(url: str) -> AsyncIterator[AsyncEngine]:
    _ensure_sqlite_dir(url)
    engine = create_async_engine(url, pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()


async def ping(url: str) -> str:
    """``SELECT 1``; returns the server's dialect name."""
    async with engine_scope(url) as engine, engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        return engine.dialect.name
