"""Migrations: idempotent, concurrent-safe, and the migrated schema is what the models declare."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from taskfleet_data.engine import engine_scope
from taskfleet_data.migrations import current_revision, head_revision, include_object, metadata, upgrade

#: the pipeline's own tables; other teams' tables are checked by their tests
OWN_TABLES = {"grants", "grant_sync_state"}


def _diff(connection):
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include_object, "target_metadata": metadata()}
    )
    return compare_metadata(context, metadata())


def _table_of(diff) -> str | None:
    op = diff[0] if isinstance(diff, list) else diff
    for item in op[1:]:
        name = getattr(item, "name", None) if not isinstance(item, str) else None
        table = getattr(item, "table", None)
        if table is not None and getattr(table, "name", None):
            return table.name
        if name:
            return name
        if isinstance(item, str):
            return item
    return None


def test_migrated_schema_matches_the_models(database_url):
    async def check():
        async with engine_scope(database_url) as engine, engine.connect() as conn:
            return await conn.run_sync(_diff)

    diffs = [d for d in asyncio.run(check()) if _table_of(d) in OWN_TABLES]
    assert diffs == []


def test_upgrade_is_idempotent_and_safe_to_run_concurrently(database_url):
    async def many():
        await asyncio.gather(*(upgrade(database_url) for _ in range(4)))
        return await current_revision(database_url)

    assert asyncio.run(many()) == head_revision()
