"""One source's sync, end to end: page through the adapter, normalise, upsert, record the sync state.

The watermark only moves when a run reached the end of its feed, so a run cut short (a
failure, ``max_pages``) is simply followed by one that starts from the same place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from taskfleet_core.settings import load
from taskfleet_data.db import database
from taskfleet_data.models import utcnow
from taskfleet_data.settings import DataSettings

from taskfleet_worker_sync.settings import GrantSourceSettings
from taskfleet_worker_sync.sources import ADAPTERS
from taskfleet_worker_sync.sources.base import SourceError, make_client
from taskfleet_worker_sync.store import PageCounts, fence_state, upsert_page

log = logging.getLogger("taskfleet.sync.pipeline")

Progress = Callable[[int, int, str], None]


@dataclass
class SourceResult:
    """What a source sync reports: its counts, and why it failed if it did."""

    source: str
    status: str = "ok"  # ok | failed | skipped
    full: bool = False
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    pages: int = 0
    complete: bool = False
    watermark: str | None = None
    error: str | None = None
    retryable: bool = False
    duration_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def sync_source(
    source: str,
    *,
    full: bool = False,
    max_pages: int | None = None,
    database_url: str | None = None,
    settings: GrantSourceSettings | None = None,
    progress: Progress | None = None,
    fence: int | None = None,
    guard: Callable[[], None] | None = None,
) -> SourceResult:
    """Sync one source; never raises for a source failure -- the result says ``failed`` and why.

    Under an overlap lock, ``fence`` is its fence (every write of this run carries it; the state row refuses
    it once a newer run wrote a higher one: ``FencedOut``) and ``guard`` raises ``LockLost`` once the lock is
    no longer held: it is called before every write, so a run that lost its lock stops before acting again.
    """
    check = guard or (lambda: None)
    settings = settings or load(GrantSourceSettings)
    started = time.monotonic()
    result = SourceResult(source=source, full=full)
    async with database(database_url or load(DataSettings).database_url) as sessions:
        check()
        async with sessions() as session:
            state = await fence_state(session, source, fence)
            state.last_run_at = utcnow()
            state.last_status = "running"
            watermark = state.watermark
            await session.commit()

        counts = PageCounts()
        newest = watermark
        try:
            async with make_client(settings) as client:
                adapter = ADAPTERS[source](client, settings)
                async for page in adapter.pages(full=full, watermark=watermark, max_pages=max_pages):
                    grants = []
                    for record in page:
                        try:
                            grant = adapter.normalise(record)
                        except Exception:  # one odd record never stops a sync
                            log.exception("%s: cannot normalise a record", source)
                            grant = None
                        if grant is None:
                            result.invalid += 1
                            continue
                        grants.append(grant)
                        if grant.modified and (newest is None or grant.modified > newest):
                            newest = grant.modified
                    check()
                    async with sessions() as session:
                        await fence_state(session, source, fence)
                        counts.add(await upsert_page(session, source, grants))
                    result.fetched += len(page)
                    result.pages = adapter.pages_fetched
                    if progress:
                        progress(result.pages, 0, f"{source}: page {result.pages}, {result.fetched} records")
                result.complete = not adapter.page_limit_reached(max_pages)
        except SourceError as exc:
            result.status, result.error = "failed", str(exc)
            result.retryable = type(exc).__name__ == "SourceUnavailable"
            log.warning("%s sync failed: %s", source, exc)
        result.inserted, result.updated, result.unchanged = counts.inserted, counts.updated, counts.unchanged
        result.duration_seconds = round(time.monotonic() - started, 3)
        result.watermark = newest if result.complete and result.status == "ok" else watermark

        check()
        async with sessions() as session:
            state = await fence_state(session, source, fence)
            state.last_status = result.status
            state.last_error = result.error
            state.last_full = full
            state.fetched, state.pages = result.fetched, result.pages
            state.inserted, state.updated, state.unchanged = result.inserted, result.updated, result.unchanged
            state.duration_seconds = result.duration_seconds
            state.watermark = result.watermark
            if result.status == "ok":
                state.last_success_at = utcnow()
            await session.commit()
    log.info("%s sync %s: %s", source, result.status, result.as_dict())
    return result
