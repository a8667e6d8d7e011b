"""Transactional outbox: jobs asked for by committed transactions, until the relay has published them.

Revision ID: 0005_outbox
Revises: 0004_sync_state_fence
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from taskfleet_data.models import UTCDateTime

revision = "0005_outbox"
down_revision = "0004_sync_state_fence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("kwargs", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_until", UTCDateTime()),
        sa.Column("sent_at", UTCDateTime()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("job_id", name="uq_outbox_job_id"),
    )
    op.create_index("ix_outbox_sent_at_id", "outbox", ["sent_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_sent_at_id", table_name="outbox")
    op.drop_table("outbox")
