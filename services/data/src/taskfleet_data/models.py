"""The shared data model: grants from every source, and each source's sync state.

Shared by the sync worker (writes), matching and notifications (read). One row per
(source, external id): syncs upsert on that pair and compare ``content_hash`` to
tell a changed record from an unchanged one, which is what makes them idempotent.
The full-text index (``grant_search``) is not mapped here: it is dialect-specific
(SQLite FTS5 / PostgreSQL tsvector) and owned by ``taskfleet_data.search``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Constraint names fixed by convention, so migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonList = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive and would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


#: Statuses that still make a grant worth matching (``is_active`` also needs the deadline ahead).
LIVE_STATUSES = frozenset({"forthcoming", "open", "active", "pipeline"})


class Grant(Base):
    """A funding opportunity or funded programme, normalised from one source record."""

    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_grants_source_external_id"),
        Index("ix_grants_active_deadline", "is_active", "deadline"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32), index=True)
    external_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    funder: Mapped[str | None] = mapped_column(String(500))
    #: ISO 3166 alpha-2 codes where known, else the source's country names.
    countries: Mapped[list[str]] = mapped_column(JsonList, default=list)
    sectors: Mapped[list[str]] = mapped_column(JsonList, default=list)
    themes: Mapped[list[str]] = mapped_column(JsonList, default=list)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(20, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    open_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Application deadline (open calls); NULL for funded projects, which have an ``end_date`` instead.
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    #: When the funded project or programme ends (closing date); an ended one is no longer active.
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Normalised lifecycle, whatever the source's own codes: forthcoming, open, active, pipeline (still
    #: live, ``LIVE_STATUSES``), closed, completed, cancelled.
    status: Mapped[str] = mapped_column(String(20), default="open")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    url: Mapped[str | None] = mapped_column(Text)
    #: sha256 of the normalised fields: a sync rewrites the row only when it changes.
    content_hash: Mapped[str] = mapped_column(String(64))
    #: float32 vector bytes (``taskfleet_data.embeddings.decode``); NULL until the embeddings task runs.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_model: Mapped[str | None] = mapped_column(String(64))
    #: The canonical grant this one duplicates (another source's record of the same thing); NULL if canonical.
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("grants.id", ondelete="SET NULL"), index=True, default=None
    )
    raw: Mapped[dict[str, Any]] = mapped_column(JsonList, default=dict)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"Grant({self.id}, {self.source}:{self.external_id}, {self.title[:40]!r})"


class SyncState(Base):
    """Per-source bookmark and last-run report: where an incremental sync resumes, and how the last one went."""

    __tablename__ = "grant_sync_state"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The source's own high-water mark (ISO date-time string) reached by the last successful sync.
    watermark: Mapped[str | None] = mapped_column(String(64))
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_full: Mapped[bool] = mapped_column(Boolean, default=False)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    #: The highest overlap-lock fence of a run that wrote this source (reliability/locks.py): a run holding a
    #: lower one lost its lock to a newer run, and its writes are refused.
    fence: Mapped[int | None] = mapped_column(BigInteger)
