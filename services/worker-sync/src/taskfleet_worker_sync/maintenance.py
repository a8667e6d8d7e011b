"""The pipeline's database-wide steps: embeddings for what lacks them, expiry, search index rebuild."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from taskfleet_data import search
from taskfleet_data.embeddings import encode, get_embedder, grant_text
from taskfleet_data.models import Grant, utcnow

Progress = Callable[[int, int, str], None]


async def generate_embeddings(
    session: AsyncSession, batch_size: int = 64, limit: int | None = None, progress: Progress | None = None
) -> dict[str, int | str]:
    """Embed grants without a vector of the current model, ``batch_size`` at a time, committing each batch."""
    embedder = get_embedder()
    missing = or_(Grant.embedding.is_(None), Grant.embedding_model.is_distinct_from(embedder.name))
    total = len((await session.execute(select(Grant.id).where(missing))).all())
    if limit is not None:
        total = min(total, limit)
    done, last_id = 0, 0
    while done < total:
        rows = (
            await session.execute(
                select(Grant.id, Grant.title, Grant.description, Grant.funder, Grant.sectors, Grant.themes)
                .where(missing, Grant.id > last_id)
                .order_by(Grant.id)
                .limit(min(batch_size, total - done))
            )
        ).all()
        if not rows:
            break
        vectors = embedder.embed([grant_text(r.title, r.description, r.funder, [*r.sectors, *r.themes]) for r in rows])
        for row, vector in zip(rows, vectors, strict=True):
            await session.execute(
                update(Grant).where(Grant.id == row.id).values(embedding=encode(vector), embedding_model=embedder.name)
            )
        await session.commit()
        done += len(rows)
        last_id = rows[-1].id
        if progress:
            progress(done, total, f"embedded {done}/{total} grants with {embedder.name}")
    return {"embedded": done, "model": embedder.name, "dim": embedder.dim}


async def cleanup_expired(session: AsyncSession) -> dict[str, int]:
    """Mark grants whose deadline or end date has passed inactive; open/forthcoming calls become closed."""
    now = utcnow()
    expired = Grant.is_active.is_(True) & (
        (Grant.deadline.is_not(None) & (Grant.deadline < now)) | (Grant.end_date.is_not(None) & (Grant.end_date < now))
    )
    conn = await session.connection()  # a Core UPDATE: its result carries the rowcount
    result = await conn.execute(
        update(Grant)
        .where(expired)
        .values(
            is_active=False,
            status=case((Grant.status.in_(["open", "forthcoming"]), "closed"), else_=Grant.status),
        )
    )
    await session.commit()
    return {"deactivated": result.rowcount or 0}


async def reindex_search(session: AsyncSession) -> dict[str, int | str]:
    """Rebuild the database's full-text index from the canonical grants."""
    indexed = await search.rebuild(session)
    await session.commit()
    return {"indexed": indexed, "backend": session.get_bind().dialect.name}
