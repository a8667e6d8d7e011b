"""Typed settings from the environment, one class per concern; each service loads only the ones it reads.

``load(BrokerSettings)`` validates once per process and caches. A bad value stops the process at start-up
with a message naming the variable (exit 2, no traceback). Seed 000's Configuration table is split between
``BrokerSettings`` (``REDIS_URL``, ``CELERY_TASK_ALWAYS_EAGER``) and Beat's own settings (the schedule toggles).

Other concerns keep their settings next to their code: ``taskfleet_data.settings.DataSettings``,
``taskfleet_api.settings.ApiSettings``, ``taskfleet_beat.settings.BeatSettings``,
``taskfleet_worker_sync.settings.GrantSourceSettings``.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from pydantic import AnyUrl, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


class FromEnvironment(BaseSettings):
    """Variables are the upper-case field names, without prefix; unknown variables are ignored."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")


class BrokerSettings(FromEnvironment):
    """Where the broker is and how Celery talks to it (every service)."""

    redis_url: str = Field("redis://localhost:6379/0", description="Valkey/Redis URL (broker + backend)")
    celery_task_always_eager: bool = Field(False, description="Run tasks synchronously (testing)")
    broker_visibility_timeout_seconds: int | None = Field(
        None, ge=1, description="Override of 2 x task time limit; only chaos tests shorten it to see redelivery"
    )
    broker_unacked_restore_seconds: int | None = Field(
        None, ge=1, description="Sweep for expired unacked messages every N s (kombu default: about every 100 s)"
    )
    worker_lost_seconds: int = Field(
        30,
        ge=3,
        le=600,
        description=(
            "A worker whose Valkey heartbeat is this old is lost: the reaper returns its in-flight messages "
            "(the visibility timeout stays the last resort); refreshed three times per period"
        ),
    )
    rate_limit_time_scale: float = Field(
        1.0, gt=0, le=1, description="Shrinks rate-limit windows (0.1: 30/min becomes 30/6 s); compressed-time tests"
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        url = AnyUrl(value)
        if url.scheme not in {"redis", "rediss"}:
            raise ValueError(f"scheme must be redis:// or rediss://, got {url.scheme}://")
        return with_cert_reqs(value)


#: ``ssl_cert_reqs`` spellings of a rediss:// URL (kombu's and Celery's, which accept the same ones).
CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
#: TLS parameters of a rediss:// URL's query that the broker and the result backend take as SSL options.
SSL_QUERY_KEYS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def with_cert_reqs(url: str) -> str:
    """A rediss:// URL with ``ssl_cert_reqs`` always present: ``required`` unless the URL names another.

    Without it kombu connects with CERT_NONE (no verification at all) and Celery's result backend refuses the URL
    (``A rediss:// URL must have parameter ssl_cert_reqs``). Every consumer of ``REDIS_URL`` (kombu, the result
    backend, redis-py's ``from_url``) then verifies the server against ``ssl_ca_certs`` (or the system CAs).
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return url
    query = parse_qs(parts.query, keep_blank_values=True)
    given = query.get("ssl_cert_reqs", [""])[-1]
    if not given:
        query["ssl_cert_reqs"] = ["required"]
    elif given.lower().removeprefix("cert_") not in CERT_REQS:
        raise ValueError(f"ssl_cert_reqs must be one of required, optional, none; got {given!r}")
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))


def redis_ssl_options(url: str) -> dict[str, Any] | None:
    """Celery's ``broker_use_ssl`` / ``redis_backend_use_ssl`` for ``url``: None for redis://.

    The options come from the URL's query (``ssl_cert_reqs``, default ``required``; ``ssl_ca_certs``,
    ``ssl_certfile``, ``ssl_keyfile``), so one ``REDIS_URL`` configures broker, backend and plain clients alike.
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return None
    query = {key: values[-1] for key, values in parse_qs(parts.query).items() if values}
    reqs = query.get("ssl_cert_reqs", "required").lower().removeprefix("cert_")
    if reqs not in CERT_REQS:
        raise ValueError(f"ssl_cert_reqs must be one of required, optional, none; got {reqs!r}")
    options: dict[str, Any] = {"ssl_cert_reqs": CERT_REQS[reqs]}
    for key in SSL_QUERY_KEYS[1:]:
        if query.get(key):
            options[key] = query[key]
    return options


class ObservabilitySettings(FromEnvironment):
    """Logs and the Prometheus endpoint (every process)."""

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one object a line, with trace/task ids")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Serve Prometheus /metrics here (unset: off)")
    metrics_addr: str = Field("0.0.0.0", description="Address the metrics endpoint binds (127.0.0.1 locally)")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()


class ProbeSettings(FromEnvironment):
    """The heartbeat and ready files the Kubernetes probes read (workers and Beat).

    The probe CLI reads the same variables without pydantic (``observability.probes``); a test keeps the
    defaults equal.
    """

    worker_health_dir: Path = Field(Path("./var/health"), description="Heartbeat and ready files for the probes")
    worker_heartbeat_interval_seconds: float = Field(10, gt=0, description="Seconds between heartbeat refreshes")
    worker_heartbeat_max_age_seconds: float = Field(60, gt=0, description="Older heartbeat fails liveness")


class SmtpSettings(FromEnvironment):
    """Outgoing mail: the email worker sends through it, the default worker's health check reaches it."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(10.0, gt=0)
    email_from: str = "Taskfleet <noreply@taskfleet.local>"


class SettingsError(SystemExit):
    """Raised at start-up when the environment holds a bad value; the message names it."""


def describe_errors(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        variable = "_".join(str(part) for part in err["loc"]).upper()
        lines.append(f"  {variable}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


_loaded: dict[type[BaseSettings], BaseSettings] = {}


def load(kind: type[S]) -> S:
    """The process-wide settings of one concern; exits with a readable message on a bad value."""
    if kind not in _loaded:
        try:
            _loaded[kind] = kind()
        except ValidationError as exc:
            print(describe_errors(exc), file=sys.stderr)
            raise SettingsError(2) from exc
    return cast(S, _loaded[kind])


_on_reload: list[Callable[[], None]] = []


def on_reload(forget: Callable[[], None]) -> Callable[[], None]:
    """Register what must be forgotten with the settings (e.g. a cached client built from them)."""
    _on_reload.append(forget)
    return forget


def reload() -> None:
    """Forget every loaded settings object and what was built from them: ``load`` reads the environment again."""
    _loaded.clear()
    for forget in _on_reload:
        forget()
