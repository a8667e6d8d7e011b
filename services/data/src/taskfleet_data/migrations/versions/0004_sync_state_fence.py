"""Sync state: the fence of the newest run that wrote it, so a run that lost its overlap lock is refused.

Revision ID: 0004_sync_state_fence
Revises: 0003_grant_end_date
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_sync_state_fence"
down_revision = "0003_grant_end_date"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("grant_sync_state", sa.Column("fence", sa.BigInteger()))


def downgrade() -> None:
    with op.batch_alter_table("grant_sync_state") as batch:
        batch.drop_column("fence")
