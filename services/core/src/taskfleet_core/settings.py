"""Typed settings from the environment, validated once at start-up.

Every variable of seed 000's Configuration table is here with the seed's default,
plus what the fleet itself needs. A bad value stops the process with a message
naming the variable (see ``load_settings``).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Literal

from pydantic import AnyUrl, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- seed 000 "Configuration" table -------------------------------------------------
    redis_url: str = Field("redis://localhost:6379/0", description="Valkey/Redis URL (broker + backend)")
    celery_task_always_eager: bool = Field(False, description="Run tasks synchronously (testing)")
    celery_beat_schedule_enabled: bool = Field(True, description="Enable Beat schedule")
    pipeline_sync_interval_hours: int = Field(6, ge=1, le=24, description="Periodic sync interval")
    sync_schedule_hour: int = Field(2, ge=0, le=23, description="Daily sync hour (UTC)")

    # --- what the fleet needs beyond the seed --------------------------------------------
    database_url: str = Field("sqlite+aiosqlite:///./var/taskfleet.db", description="SQLAlchemy async URL")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(10.0, gt=0)
    email_from: str = "Taskfleet <noreply@taskfleet.local>"

    api_max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest accepted request body")
    beat_schedule_file: Path = Field(Path("./var/celerybeat-schedule"), description="Beat's local state file")
    beat_lock_ttl_seconds: int = Field(60, ge=3, description="Beat leader lock TTL; a standby takes over within it")
    beat_canary_interval_seconds: float = Field(0, ge=0, description="Extra health-check entry every N s (0: off)")
    worker_health_dir: Path = Field(Path("./var/health"), description="Heartbeat and ready files for the probes")
    worker_heartbeat_interval_seconds: float = Field(10, gt=0, description="Seconds between heartbeat refreshes")
    worker_heartbeat_max_age_seconds: float = Field(60, gt=0, description="Older heartbeat fails liveness")
    broker_visibility_timeout_seconds: int | None = Field(
        None, ge=1, description="Override of 2 x task time limit; only chaos tests shorten it to see redelivery"
    )
    broker_unacked_restore_seconds: int | None = Field(
        None, ge=1, description="Sweep for expired unacked messages every N s (kombu default: about every 100 s)"
    )
    rate_limit_time_scale: float = Field(
        1.0, gt=0, le=1, description="Shrinks rate-limit windows (0.1: 30/min becomes 30/6 s); compressed-time tests"
    )
    api_tokens: str = Field("", description="Bearer tokens, comma-separated (several for rotation); from a Secret")
    api_auth_required: bool = Field(True, description="Refuse mutating requests when no token is configured")
    api_auth_read_only: bool = Field(False, description="Also require a token for read-only endpoints")
    api_cors_origins: str = Field("", description="Comma-separated allowed CORS origins; empty: CORS off")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one object a line, with trace/task ids")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Serve Prometheus /metrics here (unset: off)")
    metrics_addr: str = Field("0.0.0.0", description="Address the metrics endpoint binds (127.0.0.1 locally)")

    # --- grant pipeline (docs/grant-pipeline.md): the real public endpoints unless pointed elsewhere ---------
    world_bank_api_url: str = Field("https://search.worldbank.org/api/v3/projects", description="World Bank")
    iati_api_url: str = Field("https://api.iatistandard.org/datastore", description="IATI Datastore base")
    iati_api_key: str | None = Field(None, description="IATI subscription key (Ocp-Apim-Subscription-Key)")
    gcf_api_url: str = Field("https://api.gcfund.org/v1", description="Green Climate Fund open data API")
    cordis_data_url: str = Field("https://cordis.europa.eu/data", description="CORDIS bulk open data")
    eu_portal_api_url: str = Field(
        "https://api.tech.ec.europa.eu/search-api/prod/rest", description="EU Funding & Tenders search API"
    )
    eu_portal_api_key: str = Field("SEDIA", description="EU portal search API key (public)")
    grant_sources_enabled: str = Field("cordis,eu_portal,iati,gcf,world_bank", description="sources sync_all runs")
    grant_http_timeout_seconds: float = Field(30.0, gt=0, description="per-request timeout of source adapters")
    grant_http_retries: int = Field(4, ge=0, le=10, description="retries of a 5xx/timeout before a source fails")
    grant_http_backoff_seconds: float = Field(1.0, ge=0, description="first retry delay, doubled each time")
    embedding_model: str = Field("hashing-384", description="hashing-<dim> (default) or minilm (optional extra)")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        url = AnyUrl(value)
        if url.scheme not in {"redis", "rediss"}:
            raise ValueError(f"scheme must be redis:// or rediss://, got {url.scheme}://")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use an async driver: sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()


class SettingsError(SystemExit):
    """Raised at start-up when the environment holds a bad value; the message names it."""


def describe_errors(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        variable = "_".join(str(part) for part in err["loc"]).upper()
        lines.append(f"  {variable}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


@functools.cache
def load_settings() -> Settings:
    """The process-wide settings; exits with a readable message on a bad value."""
    try:
        return Settings()
    except ValidationError as exc:
        print(describe_errors(exc), file=sys.stderr)
        raise SettingsError(2) from exc
