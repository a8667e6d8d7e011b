"""Grants: end date of funded projects, apart from the application deadline of open calls.

Revision ID: 0003_grant_end_date
Revises: 0002_accounts
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from taskfleet_data.models import UTCDateTime

revision = "0003_grant_end_date"
down_revision = "0002_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("grants", sa.Column("end_date", UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("end_date")
