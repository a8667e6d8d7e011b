"""Small database helpers for the pipeline tests (async code run to completion)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select
from taskfleet_data.db import session_for
from taskfleet_data.models import Grant, SyncState


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _count_by_source(url: str) -> dict[str, int]:
    async with session_for(url) as session:
        rows = await session.execute(select(Grant.source, func.count()).group_by(Grant.source))
        return {source: count for source, count in rows}


def count_by_source(url: str) -> dict[str, int]:
    return run(_count_by_source(url))


async def _grants(url: str, *where: Any) -> list[Grant]:
    async with session_for(url) as session:
        return list((await session.execute(select(Grant).where(*where).order_by(Grant.id))).scalars())


def grants(url: str, *where: Any) -> list[Grant]:
    return run(_grants(url, *where))


def grant(url: str, source: str, external_id: str) -> Grant:
    (found,) = grants(url, Grant.source == source, Grant.external_id == external_id)
    return found


async def _state(url: str, source: str) -> SyncState | None:
    async with session_for(url) as session:
        return await session.get(SyncState, source)


def sync_state(url: str, source: str) -> SyncState | None:
    return run(_state(url, source))


async def in_session(url: str, fn: Any) -> Any:
    async with session_for(url) as session:
        return await fn(session)


def with_session(url: str, fn: Any) -> Any:
    """``fn(session)`` (a coroutine function) on a fresh session of ``url``."""
    return run(in_session(url, fn))
