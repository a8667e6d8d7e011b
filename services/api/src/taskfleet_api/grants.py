"""``/api/v1/grants``: full-text search over the canonical grants, with the filters the data supports.

Ranking is the database's own index (``taskfleet_data.search``: SQLite FTS5 or PostgreSQL tsvector);
the filters (source, country, status, deadline window, active) then narrow the ranked hits, and the
page is cut from what remains. Search considers the ``MAX_HITS`` best-ranked grants; ``truncated``
says when more matched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from taskfleet_data import search
from taskfleet_data.models import Grant

from taskfleet_api.accounts import MAX_ID, session
from taskfleet_api.auth import require_read
from taskfleet_api.bodies import GuardedRoute
from taskfleet_api.responses import NOT_FOUND, PROTECTED
from taskfleet_api.schemas import Timestamp

router = APIRouter(
    prefix="/api/v1/grants",
    tags=["grants"],
    route_class=GuardedRoute,
    dependencies=[Depends(require_read)],
    responses=PROTECTED,
)

#: Ranked hits considered per search, before filters and pagination.
MAX_HITS = 1000
Source = Literal["cordis", "eu_portal", "iati", "gcf", "world_bank"]
Status = Literal["forthcoming", "open", "active", "pipeline", "closed", "completed", "cancelled"]


class GrantOut(BaseModel):
    id: int
    source: str
    title: str
    funder: str | None
    countries: list[str]
    sectors: list[str]
    status: str
    is_active: bool
    deadline: datetime | None
    amount: Decimal | None
    currency: str | None
    url: str | None
    score: float | None = Field(None, description="search rank, higher is better (search results only)")


class GrantDetail(GrantOut):
    description: str
    themes: list[str]
    open_date: datetime | None
    end_date: datetime | None


class GrantPage(BaseModel):
    total: int = Field(description="grants matching the query and the filters (among the MAX_HITS best ranked)")
    truncated: bool = Field(description="more than MAX_HITS grants matched the words: refine the query")
    offset: int
    limit: int
    items: list[GrantOut]


def _utc(moment: datetime) -> datetime:
    """A time without a zone is read as UTC (the database keeps UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _out(grant: Grant, score: float | None = None) -> GrantOut:
    return GrantOut(
        id=grant.id,
        source=grant.source,
        title=grant.title,
        funder=grant.funder,
        countries=list(grant.countries or []),
        sectors=list(grant.sectors or []),
        status=grant.status,
        is_active=grant.is_active,
        deadline=grant.deadline,
        amount=grant.amount,
        currency=grant.currency,
        url=grant.url,
        score=score,
    )


@router.get("", response_model=GrantPage)
async def search_grants(
    q: str = Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$", description="words, all must match"),
    source: Source | None = None,
    country: str | None = Query(None, pattern=r"^[A-Za-z]{2}$", description="ISO 3166 alpha-2"),
    grant_status: Status | None = Query(None, alias="status"),
    active_only: bool = Query(True, description="only grants still open or running"),
    deadline_after: Timestamp | None = Query(None, description="deadline at or after (ISO 8601)"),
    deadline_before: Timestamp | None = Query(None, description="deadline before (ISO 8601)"),
    offset: int = Query(0, ge=0, le=MAX_HITS),
    limit: int = Query(20, ge=1, le=100),
    db: AsyncSession = Depends(session),
) -> GrantPage:
    hits = await search.search(db, q, limit=MAX_HITS + 1, active_only=active_only)
    truncated = len(hits) > MAX_HITS
    hits = hits[:MAX_HITS]
    query = select(Grant).where(Grant.id.in_([h.grant_id for h in hits])) if hits else None
    grants: dict[int, Grant] = {}
    if query is not None:
        if source:
            query = query.where(Grant.source == source)
        if grant_status:
            query = query.where(Grant.status == grant_status)
        if deadline_after:
            query = query.where(Grant.deadline >= _utc(deadline_after))
        if deadline_before:
            query = query.where(Grant.deadline < _utc(deadline_before))
        grants = {g.id: g for g in (await db.execute(query)).scalars()}
    wanted = country.upper() if country else None
    ranked = [
        (grants[h.grant_id], h.rank)
        for h in hits
        if h.grant_id in grants and (wanted is None or wanted in (grants[h.grant_id].countries or []))
    ]
    page = [_out(g, score) for g, score in ranked[offset : offset + limit]]
    return GrantPage(total=len(ranked), truncated=truncated, offset=offset, limit=limit, items=page)


@router.get("/{grant_id}", response_model=GrantDetail, responses=NOT_FOUND)
async def get_grant(grant_id: int = Path(ge=1, le=MAX_ID), db: AsyncSession = Depends(session)) -> GrantDetail:
    grant = await db.get(Grant, grant_id)
    if grant is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no grant {grant_id}")
    return GrantDetail(
        **_out(grant).model_dump(),
        description=grant.description,
        themes=list(grant.themes or []),
        open_date=grant.open_date,
        end_date=grant.end_date,
    )
