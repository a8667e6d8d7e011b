"""Grants, per-source sync state, and the full-text search index.

Revision ID: 0001_grants
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from taskfleet_data.models import UTCDateTime

revision = "0001_grants"
down_revision = None
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("funder", sa.String(500)),
        sa.Column("countries", _json(), nullable=False),
        sa.Column("sectors", _json(), nullable=False),
        sa.Column("themes", _json(), nullable=False),
        sa.Column("amount", sa.Numeric(20, 2)),
        sa.Column("currency", sa.String(3)),
        sa.Column("open_date", UTCDateTime()),
        sa.Column("deadline", UTCDateTime()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("url", sa.Text()),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("embedding", sa.LargeBinary()),
        sa.Column("embedding_model", sa.String(64)),
        sa.Column(
            "duplicate_of_id",
            sa.Integer(),
            sa.ForeignKey("grants.id", name="fk_grants_duplicate_of_id_grants", ondelete="SET NULL"),
        ),
        sa.Column("raw", _json(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_grants"),
        sa.UniqueConstraint("source", "external_id", name="uq_grants_source_external_id"),
    )
    op.create_index("ix_grants_source", "grants", ["source"])
    op.create_index("ix_grants_deadline", "grants", ["deadline"])
    op.create_index("ix_grants_duplicate_of_id", "grants", ["duplicate_of_id"])
    op.create_index("ix_grants_active_deadline", "grants", ["is_active", "deadline"])

    op.create_table(
        "grant_sync_state",
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("watermark", sa.String(64)),
        sa.Column("last_run_at", UTCDateTime()),
        sa.Column("last_success_at", UTCDateTime()),
        sa.Column("last_status", sa.String(16)),
        sa.Column("last_error", sa.Text()),
        sa.Column("last_full", sa.Boolean(), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Float()),
        sa.PrimaryKeyConstraint("source", name="pk_grant_sync_state"),
    )

    if op.get_bind().dialect.name == "sqlite":
        # rowid = grants.id; rebuilt by maintenance.reindex_search
        op.execute(
            "CREATE VIRTUAL TABLE grant_search USING fts5(title, description, funder, tokenize='porter unicode61')"
        )
    else:
        op.create_table(
            "grant_search",
            sa.Column(
                "grant_id",
                sa.Integer(),
                sa.ForeignKey("grants.id", name="fk_grant_search_grant_id_grants", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("document", postgresql.TSVECTOR(), nullable=False),
        )
        op.create_index("ix_grant_search_document", "grant_search", ["document"], postgresql_using="gin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS grant_search")
    else:
        op.drop_table("grant_search")
    op.drop_table("grant_sync_state")
    op.drop_table("grants")
