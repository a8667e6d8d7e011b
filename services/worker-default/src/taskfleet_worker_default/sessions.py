"""``maintenance.cleanup_old_sessions``: delete expired sessions and expired or long-revoked tokens.

Plain ``DELETE .. WHERE expires_at < now`` on indexed columns: running it twice deletes nothing
the second time, so a retry or redelivery is harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_
from taskfleet_core.settings import load
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_core.tasks.contracts import NoArgs
from taskfleet_core.tasks.fleet_task import FleetTask, implements
from taskfleet_data.accounts import AuthToken, UserSession
from taskfleet_data.db import session_for
from taskfleet_data.settings import DataSettings

#: A revoked token is kept this long for audit, then deleted even if it has not expired.
REVOKED_TOKEN_RETENTION = timedelta(days=7)


async def cleanup(url: str, now: datetime) -> dict[str, int]:
    async with session_for(url) as session, session.begin():
        conn = await session.connection()  # a Core DELETE: its result carries the rowcount
        gone_sessions = await conn.execute(delete(UserSession).where(UserSession.expires_at < now))
        gone_tokens = await conn.execute(
            delete(AuthToken).where(
                or_(AuthToken.expires_at < now, AuthToken.revoked_at < now - REVOKED_TOKEN_RETENTION)
            )
        )
    return {"sessions_deleted": gone_sessions.rowcount, "tokens_deleted": gone_tokens.rowcount}


@implements("maintenance.cleanup_old_sessions")
def cleanup_old_sessions(task: FleetTask, args: NoArgs) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {**run_async(lambda: cleanup(load(DataSettings).database_url, now)), "before": now.isoformat()}
