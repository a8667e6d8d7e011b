"""Database freshness for ``maintenance.health_check``: when did each grant source last sync successfully?

A source that has run but not succeeded within ``MAX_AGE`` (two daily syncs) is stale and
degrades the report; a source that never ran yet (a fresh install) is listed, not counted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from taskfleet_data.db import session_for
from taskfleet_data.models import SyncState
from taskfleet_data.settings import DataSettings

MAX_AGE = timedelta(hours=48)


async def sync_freshness(settings: DataSettings, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    async with session_for(settings.database_url) as session:
        states = {s.source: s for s in (await session.scalars(select(SyncState))).all()}
    enabled = settings.enabled_sources()
    sources: dict[str, Any] = {}
    for source in sorted(set(enabled) | set(states)):
        state = states.get(source)
        if state is None or state.last_run_at is None:
            sources[source] = {"last_success_at": None, "stale": None, "note": "never synced"}
            continue
        success = state.last_success_at
        age = None if success is None else (now - success).total_seconds() / 3600
        sources[source] = {
            "last_success_at": success.isoformat() if success else None,
            "age_hours": None if age is None else round(age, 1),
            "last_status": state.last_status,
            "stale": age is None or age > MAX_AGE.total_seconds() / 3600,
        }
    stale = sorted(s for s, info in sources.items() if info["stale"])
    return {"max_age_hours": MAX_AGE.total_seconds() / 3600, "stale_sources": stale, "sources": sources}
