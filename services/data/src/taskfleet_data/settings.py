"""Where the domain data lives and how it is derived (services that use the database)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from taskfleet_core.settings import FromEnvironment


class DataSettings(FromEnvironment):
    database_url: str = Field("sqlite+aiosqlite:///./var/taskfleet.db", description="SQLAlchemy async URL")
    database_migrations: Literal["run", "wait"] = Field(
        "run",
        description="run: a process migrates the database to head at first use (local stack, SQLite); "
        "wait: a deployment's migration Job does, and services wait for the schema (the chart sets it)",
    )
    database_schema_wait_seconds: float = Field(
        600, gt=0, description="How long a service waits for the migration Job's schema before it gives up"
    )
    embedding_model: str = Field("hashing-384", description="hashing-<dim> (default) or minilm (optional extra)")
    grant_sources_enabled: str = Field("cordis,eu_portal,iati,gcf,world_bank", description="sources sync_all runs")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use an async driver: sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    def enabled_sources(self) -> list[str]:
        return [s.strip() for s in self.grant_sources_enabled.split(",") if s.strip()]
