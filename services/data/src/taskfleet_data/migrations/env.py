"""Alembic environment: uses the connection handed in by ``upgrade()``, else builds one from the URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from taskfleet_core.settings import load

from taskfleet_data.engine import engine_scope
from taskfleet_data.migrations import include_object, metadata
from taskfleet_data.settings import DataSettings

config = context.config
target_metadata = metadata()


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_url(url: str) -> None:
    async with engine_scope(url) as engine, engine.begin() as conn:
        await conn.run_sync(run_with)


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        url = load(DataSettings).database_url
    asyncio.run(run_from_url(url))


main()
