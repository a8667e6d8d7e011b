"""Companies, their users and sessions, match results, the notification log and monthly statistics.

Declared on the grant model's ``Base`` (one metadata, one migration history). What makes the
tasks on these tables safe to run twice is in the constraints, not in the code:

* ``match_results`` is unique on (company, grant): a recalculation replaces, it cannot duplicate;
* ``notification_log`` is unique on (user, grant, window): whoever inserts the row sends the email;
* ``monthly_statistics`` is unique on (year, month): a month is computed once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from taskfleet_data.models import Base, JsonList, UTCDateTime, utcnow
from taskfleet_data.outbox import enqueue_in

COMPANY_SIZES = ("micro", "small", "medium", "large")
#: The job a new company asks for, through the outbox: its first matches.
MATCH_NEW_COMPANY = "matching.calculate_company_matches"


class Company(Base):
    __tablename__ = "companies"
    __table_args__ = (Index("ix_companies_active_last_active_at", "active", "last_active_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    #: ISO 3166 alpha-2, as grants' ``countries``.
    country: Mapped[str | None] = mapped_column(String(2))
    sectors: Mapped[list[str]] = mapped_column(JsonList, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[str | None] = mapped_column(String(10))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: float32 bytes like ``Grant.embedding``; recomputed when the text or the model changes.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_model: Mapped[str | None] = mapped_column(String(64))
    #: Last time someone of the company used the product: ``daily-match-refresh`` covers recent ones.
    last_active_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    notify_deadlines: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Days before a deadline to alert; NULL = the task's windows (default 14, 7, 1).
    alert_windows_days: Mapped[list[int] | None] = mapped_column(JsonList)
    #: Only matches at least this good trigger alerts.
    min_alert_score: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserSession(Base):
    """A login session; ``cleanup_old_sessions`` deletes it after ``expires_at``."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AuthToken(Base):
    """Single-purpose tokens (password reset, email verification, API); expired or revoked ones are deleted."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MatchResult(Base):
    """One of a company's top-N grants from its latest calculation (older ones are replaced)."""

    __tablename__ = "match_results"
    __table_args__ = (
        UniqueConstraint("company_id", "grant_id", name="uq_match_results_company_id_grant_id"),
        Index("ix_match_results_company_id_rank", "company_id", "rank"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[str]] = mapped_column(JsonList, default=list)
    components: Mapped[dict[str, Any]] = mapped_column(JsonList, default=dict)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    job_id: Mapped[str | None] = mapped_column(String(64))


class NotificationLog(Base):
    """One row per deadline alert: the row is the claim, so an alert is sent by one run only."""

    __tablename__ = "notification_log"
    __table_args__ = (
        UniqueConstraint("user_id", "grant_id", "window_days", name="uq_notification_log_user_id_grant_id_window"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    window_days: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32), default="deadline")
    #: ``claimed`` (row written, email not yet handed to send_email) -> ``dispatched``.
    status: Mapped[str] = mapped_column(String(16), default="claimed")
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    email_job_id: Mapped[str | None] = mapped_column(String(200))
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class MonthlyStatistics(Base):
    __tablename__ = "monthly_statistics"
    __table_args__ = (UniqueConstraint("year", "month", name="uq_monthly_statistics_year_month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JsonList, default=dict)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    job_id: Mapped[str | None] = mapped_column(String(64))


async def add_company(session: AsyncSession, **fields: Any) -> tuple[Company, str]:
    """A new company and the job computing its first matches, in the caller's transaction: both commit or neither.

    Returns the company (its id assigned) and the matching job's id, valid at once for the job status API.
    """
    company = Company(**fields)
    session.add(company)
    await session.flush()
    job_id = await enqueue_in(session, MATCH_NEW_COMPANY, kwargs={"company_id": company.id})
    return company, job_id
