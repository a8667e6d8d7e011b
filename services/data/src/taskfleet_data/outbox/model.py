"""The ``outbox`` table: one row per job asked for by a committed transaction, until the relay prunes it.

A row is *waiting* while ``sent_at`` is NULL. A relay claims waiting rows by writing its claim token and a
lease (``claimed_until``) in one conditional UPDATE; a lease that runs out (its relay died) makes the row
claimable again. ``job_id`` is fixed at enqueue time and unique: a row published twice (a relay died between
publish and mark) is the same job twice, which the workers' idempotency absorbs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taskfleet_data.models import Base, JsonList, UTCDateTime, utcnow


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_sent_at_id", "sent_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), unique=True)
    task: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(32))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JsonList, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The claim token of the relay publishing the row now; NULL when unclaimed or sent.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    #: End of that relay's lease: past it, another relay may claim the row (the first one is presumed dead).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Failed publishes so far (broker away) and the last error, for whoever looks at a stuck row.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
