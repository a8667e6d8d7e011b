"""Full-text search over grants in the database itself (replaces the seed's Meilisearch).

SQLite: an FTS5 table (porter stemming) whose rowid is the grant id. PostgreSQL: a
``tsvector`` per grant with a GIN index. Both hold canonical grants only (duplicates
are linked to their canonical grant, not searched twice) and are rebuilt by
``maintenance.reindex_search``; ``index_grants`` refreshes a few rows in between.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Integer, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

_TERM = re.compile(r"[^\W_]+", re.UNICODE)

_PG_DOCUMENT = (
    "setweight(to_tsvector('english', coalesce(g.title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(g.funder, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(g.description, '')), 'C')"
)


@dataclass(frozen=True)
class SearchHit:
    grant_id: int
    title: str
    rank: float


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def rebuild(session: AsyncSession) -> int:
    """Rebuild the whole index from the canonical grants; returns the number indexed. Caller commits."""
    if _dialect(session) == "sqlite":
        await session.execute(text("DELETE FROM grant_search"))
        await session.execute(
            text(
                "INSERT INTO grant_search(rowid, title, description, funder) "
                "SELECT id, title, description, coalesce(funder, '') FROM grants WHERE duplicate_of_id IS NULL"
            )
        )
    else:
        await session.execute(text("DELETE FROM grant_search"))
        await session.execute(
            text(
                f"INSERT INTO grant_search(grant_id, document) SELECT g.id, {_PG_DOCUMENT} "
                "FROM grants g WHERE g.duplicate_of_id IS NULL"
            )
        )
    result = await session.execute(text("SELECT count(*) FROM grant_search"))
    return int(result.scalar_one())


async def index_grants(session: AsyncSession, grant_ids: Sequence[int]) -> None:
    """Refresh the index rows of a few grants (dropped when they became duplicates). Caller commits."""
    if not grant_ids:
        return
    ids = bindparam("ids", type_=Integer, expanding=True)
    if _dialect(session) == "sqlite":
        await session.execute(text("DELETE FROM grant_search WHERE rowid IN :ids").bindparams(ids), {"ids": grant_ids})
        await session.execute(
            text(
                "INSERT INTO grant_search(rowid, title, description, funder) "
                "SELECT id, title, description, coalesce(funder, '') FROM grants "
                "WHERE id IN :ids AND duplicate_of_id IS NULL"
            ).bindparams(ids),
            {"ids": grant_ids},
        )
    else:
        await session.execute(
            text("DELETE FROM grant_search WHERE grant_id IN :ids").bindparams(ids), {"ids": grant_ids}
        )
        await session.execute(
            text(
                f"INSERT INTO grant_search(grant_id, document) SELECT g.id, {_PG_DOCUMENT} FROM grants g "
                "WHERE g.id IN :ids AND g.duplicate_of_id IS NULL"
            ).bindparams(ids),
            {"ids": grant_ids},
        )


async def search(session: AsyncSession, query: str, limit: int = 20, active_only: bool = False) -> list[SearchHit]:
    """Grants matching every word of ``query`` (stemmed), best first."""
    terms = _TERM.findall(query)
    if not terms:
        return []
    active = " AND g.is_active" if active_only else ""
    if _dialect(session) == "sqlite":
        match = " AND ".join(f'"{t}"' for t in terms)
        rows = await session.execute(
            text(
                "SELECT g.id, g.title, bm25(grant_search, 10.0, 1.0, 3.0) AS rank FROM grant_search "
                f"JOIN grants g ON g.id = grant_search.rowid WHERE grant_search MATCH :q{active} "
                "ORDER BY rank LIMIT :limit"
            ),
            {"q": match, "limit": limit},
        )
        return [SearchHit(r.id, r.title, -float(r.rank)) for r in rows]
    rows = await session.execute(
        text(
            "SELECT g.id, g.title, ts_rank(s.document, q) AS rank "
            "FROM grant_search s JOIN grants g ON g.id = s.grant_id, plainto_tsquery('english', :q) q "
            f"WHERE s.document @@ q{active} ORDER BY rank DESC, g.id LIMIT :limit"
        ),
        {"q": " ".join(terms), "limit": limit},
    )
    return [SearchHit(r.id, r.title, float(r.rank)) for r in rows]
