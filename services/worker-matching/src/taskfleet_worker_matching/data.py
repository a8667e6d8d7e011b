"""Reads and writes of matching: candidate grants, company profiles, and the atomic swap of results.

Candidates are grants a company could still apply to: active, a live status, not a duplicate of
another grant, deadline ahead or none. A company's results are replaced in one transaction
(delete + insert, company row locked on PostgreSQL), so a reader sees the old list or the new
one, and two calculations of the same company cannot interleave into duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from taskfleet_data.accounts import Company, MatchResult
from taskfleet_data.embeddings import decode, encode, get_embedder
from taskfleet_data.models import LIVE_STATUSES, Grant

from taskfleet_worker_matching.scoring import CompanyProfile, GrantRow, Match, sector_words


def _countries(values: Sequence[str] | None) -> frozenset[str]:
    return frozenset(v.strip().upper() for v in values or () if v and v.strip())


def company_text(company: Company) -> str:
    """What a company is embedded from: its name, what it does, its sectors."""
    return "\n".join(p for p in (company.name, company.description, " ".join(company.sectors or ())) if p)


async def candidate_grants(session: AsyncSession, now: datetime) -> list[GrantRow]:
    model = get_embedder().name
    rows = await session.execute(
        select(
            Grant.id,
            Grant.title,
            Grant.countries,
            Grant.sectors,
            Grant.themes,
            Grant.deadline,
            Grant.embedding,
            Grant.embedding_model,
        ).where(
            Grant.is_active.is_(True),
            Grant.status.in_(LIVE_STATUSES),
            Grant.duplicate_of_id.is_(None),
            or_(Grant.deadline.is_(None), Grant.deadline >= now),
        )
    )
    return [
        GrantRow(
            id=r.id,
            title=r.title,
            countries=_countries(r.countries),
            sectors=sector_words([*(r.sectors or ()), *(r.themes or ())]),
            sector_labels=tuple(dict.fromkeys([*(r.sectors or ()), *(r.themes or ())])),
            deadline=r.deadline,
            # vectors of another model are not comparable: treated as missing until re-embedded
            embedding=decode(r.embedding) if r.embedding is not None and r.embedding_model == model else None,
        )
        for r in rows
    ]


async def company_profiles(session: AsyncSession, company_ids: Sequence[int]) -> list[CompanyProfile]:
    """Profiles of the given companies, embedding the ones whose vector is missing or stale."""
    embedder = get_embedder()
    companies = (await session.scalars(select(Company).where(Company.id.in_(company_ids)))).all()
    stale = [c for c in companies if c.embedding is None or c.embedding_model != embedder.name]
    if stale:
        vectors = embedder.embed([company_text(c) for c in stale])
        for company, vector in zip(stale, vectors, strict=True):
            company.embedding, company.embedding_model = encode(vector), embedder.name  # flushed with the results
    return [
        CompanyProfile(
            id=c.id,
            country=(c.country or "").upper() or None,
            sectors=sector_words(c.sectors or ()),
            embedding=decode(c.embedding) if c.embedding is not None else None,
        )
        for c in sorted(companies, key=lambda c: c.id)
    ]


async def replace_matches(
    session: AsyncSession, company_id: int, matches: Sequence[Match], computed_at: datetime, job_id: str | None
) -> None:
    """Swap the company's results for ``matches``; call inside the session's transaction."""
    # Serialise calculations of one company (PostgreSQL row lock; SQLite has one writer anyway).
    await session.execute(select(Company.id).where(Company.id == company_id).with_for_update())
    await session.execute(delete(MatchResult).where(MatchResult.company_id == company_id))
    if matches:
        await session.execute(
            insert(MatchResult),
            [
                {
                    "company_id": company_id,
                    "grant_id": m.grant_id,
                    "rank": rank,
                    "score": m.score,
                    "reasons": m.reasons,
                    "components": {k: round(v, 6) for k, v in m.components.items()},
                    "computed_at": computed_at,
                    "job_id": job_id,
                }
                for rank, m in enumerate(matches, start=1)
            ],
        )


async def company_ids_to_refresh(session: AsyncSession, active_within_days: int | None, now: datetime) -> list[int]:
    """Active companies; with ``active_within_days``, only those used within that many days."""
    stmt = select(Company.id).where(Company.active.is_(True)).order_by(Company.id)
    if active_within_days is not None:
        stmt = stmt.where(Company.last_active_at >= now - timedelta(days=active_within_days))
    return list((await session.scalars(stmt)).all())
