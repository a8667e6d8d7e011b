"""Writing normalised grants: upsert on (source, external id), rewrite only what changed.

Each page is one transaction, so a sync killed halfway keeps the pages it wrote and the
next run finds them unchanged (equal ``content_hash``) -- running again is always safe.
A changed record loses its embedding (its text changed) and is re-embedded later; new and changed
records are indexed for search in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from taskfleet_core.reliability.locks import FencedOut
from taskfleet_data import search
from taskfleet_data.models import Grant, SyncState, utcnow

from taskfleet_worker_sync.normalise import NormalisedGrant


@dataclass
class PageCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0

    def add(self, other: PageCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped += other.skipped


def _values(grant: NormalisedGrant, digest: str, now: datetime) -> dict[str, Any]:
    return {
        "title": grant.title,
        "description": grant.description,
        "funder": grant.funder,
        "countries": grant.countries,
        "sectors": grant.sectors,
        "themes": grant.themes,
        "amount": grant.amount,
        "currency": grant.currency,
        "open_date": grant.open_date,
        "deadline": grant.deadline,
        "end_date": grant.end_date,
        "status": grant.effective_status(now),
        "is_active": grant.is_active(now),
        "url": grant.url,
        "content_hash": digest,
        "raw": grant.raw,
        "updated_at": now,
        "last_seen_at": now,
    }


async def upsert_page(session: AsyncSession, source: str, grants: list[NormalisedGrant]) -> PageCounts:
    """Insert new grants, update changed ones, touch ``last_seen_at`` of unchanged ones; then commit."""
    now = utcnow()
    by_id = {g.external_id: g for g in grants}  # a record listed twice in one page counts once
    counts = PageCounts(skipped=len(grants) - len(by_id))
    if not by_id:
        return counts
    rows = await session.execute(
        select(Grant.id, Grant.external_id, Grant.content_hash).where(
            Grant.source == source, Grant.external_id.in_(list(by_id))
        )
    )
    existing = {r.external_id: (r.id, r.content_hash) for r in rows}
    new_rows: list[dict[str, Any]] = []
    unchanged_ids: list[int] = []
    updated_ids: list[int] = []
    for external_id, grant in by_id.items():
        digest = grant.content_hash()
        if external_id not in existing:
            new_rows.append(
                {"source": source, "external_id": external_id, "first_seen_at": now} | _values(grant, digest, now)
            )
        elif existing[external_id][1] == digest:
            unchanged_ids.append(existing[external_id][0])
        else:
            values = _values(grant, digest, now) | {"embedding": None, "embedding_model": None}
            await session.execute(update(Grant).where(Grant.id == existing[external_id][0]).values(**values))
            updated_ids.append(existing[external_id][0])
            counts.updated += 1
    if new_rows:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = insert(Grant).on_conflict_do_nothing(index_elements=["source", "external_id"])
        await session.execute(statement, new_rows)
        counts.inserted = len(new_rows)
    if unchanged_ids:
        await session.execute(update(Grant).where(Grant.id.in_(unchanged_ids)).values(last_seen_at=now))
        counts.unchanged = len(unchanged_ids)
    if new_rows or updated_ids:  # searchable at once, not only after the next full reindex
        new_ids = await session.execute(
            select(Grant.id).where(Grant.source == source, Grant.external_id.in_([r["external_id"] for r in new_rows]))
        )
        await search.index_grants(session, updated_ids + [r.id for r in new_ids])
    await session.commit()
    return counts


async def load_state(session: AsyncSession, source: str, *, for_update: bool = False) -> SyncState:
    state = await session.get(SyncState, source, with_for_update=for_update)
    if state is None:
        state = SyncState(source=source, last_full=False, fetched=0, inserted=0, updated=0, unchanged=0, pages=0)
        session.add(state)
    return state


async def fence_state(session: AsyncSession, source: str, fence: int | None) -> SyncState:
    """The source's state row, locked for this transaction, once it accepts ``fence`` (the writer's lock fence,
    reliability/locks.py): a row that saw a higher fence belongs to a newer run and refuses this one's writes
    (``FencedOut``); otherwise it records ``fence``, so from now on every older run is refused. ``None``: no
    lock (a direct call), nothing checked."""
    state = await load_state(session, source, for_update=fence is not None)
    if fence is None:
        return state
    newer = state.fence
    if newer is not None and fence < newer:
        await session.rollback()
        raise FencedOut(f"{source}: write with fence {fence} refused, a newer run holds fence {newer}")
    state.fence = fence
    return state
