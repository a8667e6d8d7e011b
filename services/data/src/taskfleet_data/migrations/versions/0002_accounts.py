"""Companies, users, sessions and tokens, match results, notification log, monthly statistics.

Revision ID: 0002_accounts
Revises: 0001_grants
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from taskfleet_data.models import UTCDateTime

revision = "0002_accounts"
down_revision = "0001_grants"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _fk(column: str, table: str, target: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.id", name=f"fk_{table}_{column}_{target}", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("country", sa.String(2)),
        sa.Column("sectors", _json(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("size", sa.String(10)),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("embedding", sa.LargeBinary()),
        sa.Column("embedding_model", sa.String(64)),
        sa.Column("last_active_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_companies"),
    )
    op.create_index("ix_companies_active_last_active_at", "companies", ["active", "last_active_at"])

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("company_id", sa.Integer(), _fk("company_id", "users", "companies"), nullable=False),
        sa.Column("notify_deadlines", sa.Boolean(), nullable=False),
        sa.Column("alert_windows_days", _json()),
        sa.Column("min_alert_score", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_index("ix_users_company_id", "users", ["company_id"])

    for table, extra in (
        ("user_sessions", []),
        ("auth_tokens", [sa.Column("kind", sa.String(32), nullable=False), sa.Column("revoked_at", UTCDateTime())]),
    ):
        op.create_table(
            table,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("user_id", sa.Integer(), _fk("user_id", table, "users"), nullable=False),
            sa.Column("token_hash", sa.String(64), nullable=False),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.Column("expires_at", UTCDateTime(), nullable=False),
            *extra,
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
            sa.UniqueConstraint("token_hash", name=f"uq_{table}_token_hash"),
        )
        op.create_index(f"ix_{table}_user_id", table, ["user_id"])
        op.create_index(f"ix_{table}_expires_at", table, ["expires_at"])

    op.create_table(
        "match_results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("company_id", sa.Integer(), _fk("company_id", "match_results", "companies"), nullable=False),
        sa.Column("grant_id", sa.Integer(), _fk("grant_id", "match_results", "grants"), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("components", _json(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.Column("job_id", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name="pk_match_results"),
        sa.UniqueConstraint("company_id", "grant_id", name="uq_match_results_company_id_grant_id"),
    )
    op.create_index("ix_match_results_company_id_rank", "match_results", ["company_id", "rank"])
    op.create_index("ix_match_results_grant_id", "match_results", ["grant_id"])
    op.create_index("ix_match_results_computed_at", "match_results", ["computed_at"])

    op.create_table(
        "notification_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer(), _fk("user_id", "notification_log", "users"), nullable=False),
        sa.Column("grant_id", sa.Integer(), _fk("grant_id", "notification_log", "grants"), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("email_job_id", sa.String(200)),
        sa.Column("dispatched_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_notification_log"),
        sa.UniqueConstraint("user_id", "grant_id", "window_days", name="uq_notification_log_user_id_grant_id_window"),
        sa.UniqueConstraint("idempotency_key", name="uq_notification_log_idempotency_key"),
    )
    op.create_index("ix_notification_log_user_id", "notification_log", ["user_id"])
    op.create_index("ix_notification_log_grant_id", "notification_log", ["grant_id"])
    op.create_index("ix_notification_log_dispatched_at", "notification_log", ["dispatched_at"])

    op.create_table(
        "monthly_statistics",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.Column("job_id", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name="pk_monthly_statistics"),
        sa.UniqueConstraint("year", "month", name="uq_monthly_statistics_year_month"),
    )


def downgrade() -> None:
    for table in (
        "monthly_statistics",
        "notification_log",
        "match_results",
        "auth_tokens",
        "user_sessions",
        "users",
        "companies",
    ):
        op.drop_table(table)
