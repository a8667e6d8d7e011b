"""``maintenance.vacuum_database``: refresh the planner's statistics (seed: "Run ANALYZE on database").

PostgreSQL: ``ANALYZE`` (autovacuum does the vacuuming; ``VACUUM FULL`` would lock tables).
SQLite: ``ANALYZE`` then ``PRAGMA optimize``. Two runs at once would only compete for I/O,
so the task takes an overlap lock (one per execution: a redelivered copy skips too) and a second run
skips, saying who holds it.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text
from taskfleet_core.broker.client import client
from taskfleet_core.reliability.locks import try_lock
from taskfleet_core.settings import load
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_core.tasks.contracts import NoArgs
from taskfleet_core.tasks.fleet_task import FleetTask, implements
from taskfleet_core.tasks.queues import QUEUES
from taskfleet_data.db import session_for
from taskfleet_data.settings import DataSettings

LOCK = "maintenance.vacuum_database"
LOCK_TTL = 2 * QUEUES["default"].time_limit


async def analyze(url: str) -> dict[str, Any]:
    started = time.perf_counter()
    async with session_for(url) as session:
        conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        dialect = conn.dialect.name
        statements = ["ANALYZE"] if dialect == "postgresql" else ["ANALYZE", "PRAGMA optimize"]
        for statement in statements:
            await conn.execute(text(statement))
    return {"dialect": dialect, "statements": statements, "seconds": round(time.perf_counter() - started, 3)}


@implements("maintenance.vacuum_database")
def vacuum_database(task: FleetTask, args: NoArgs) -> dict[str, Any]:
    lock, reason = try_lock(client(), LOCK, LOCK_TTL, task.request.id or "")
    if lock is None:
        return {"skipped": True, "reason": reason}
    try:
        with lock.renewing():  # a slow ANALYZE keeps its lock past the TTL
            return {"skipped": False, **run_async(lambda: analyze(load(DataSettings).database_url))}
    finally:
        lock.release()
