"""Settings: one class per concern, seed 000's variables and defaults; a bad value stops start-up naming it."""

import os
import subprocess
import sys

import pytest
from pydantic_settings import BaseSettings
from taskfleet_api.settings import ApiSettings
from taskfleet_beat.settings import BeatSettings
from taskfleet_core.settings import BrokerSettings, ObservabilitySettings, ProbeSettings, SmtpSettings
from taskfleet_data.settings import DataSettings
from taskfleet_worker_sync.settings import GrantSourceSettings

from tests.support.reference import seed000

#: Where each variable of seed 000's Configuration table lives now.
SEED_HOMES: dict[str, type[BaseSettings]] = {
    "redis_url": BrokerSettings,
    "celery_task_always_eager": BrokerSettings,
    "celery_beat_schedule_enabled": BeatSettings,
    "pipeline_sync_interval_hours": BeatSettings,
    "sync_schedule_hour": BeatSettings,
}
EVERY_CONCERN = (
    BrokerSettings,
    ObservabilitySettings,
    ProbeSettings,
    SmtpSettings,
    DataSettings,
    ApiSettings,
    BeatSettings,
    GrantSourceSettings,
)


def test_seed_configuration_table_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = seed000()["configuration"]
    assert {row["variable"].lower() for row in rows} == set(SEED_HOMES)
    for row in rows:
        name = row["variable"].lower()
        monkeypatch.delenv(row["variable"], raising=False)
        value = getattr(SEED_HOMES[name](), name)
        assert str(value).lower() == row["default"].lower(), name
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert DataSettings().database_url.startswith("sqlite+aiosqlite://")


def test_each_variable_has_one_home() -> None:
    seen: dict[str, str] = {}
    for kind in EVERY_CONCERN:
        for name in kind.model_fields:
            assert name not in seen, f"{name.upper()} is read by {seen[name]} and {kind.__name__}"
            seen[name] = kind.__name__


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BEAT_SCHEDULE_ENABLED", "false")
    monkeypatch.setenv("SYNC_SCHEDULE_HOUR", "5")
    settings = BeatSettings()
    assert settings.celery_beat_schedule_enabled is False
    assert settings.sync_schedule_hour == 5


@pytest.mark.parametrize(
    ("variable", "value", "module", "kind"),
    [
        ("SYNC_SCHEDULE_HOUR", "25", "taskfleet_beat.settings", "BeatSettings"),
        ("PIPELINE_SYNC_INTERVAL_HOURS", "zero", "taskfleet_beat.settings", "BeatSettings"),
        ("REDIS_URL", "http://localhost:6379", "taskfleet_core.settings", "BrokerSettings"),
        ("DATABASE_URL", "postgresql://no-async-driver/db", "taskfleet_data.settings", "DataSettings"),
        ("CELERY_TASK_ALWAYS_EAGER", "maybe", "taskfleet_core.settings", "BrokerSettings"),
        ("LOG_LEVEL", "LOUD", "taskfleet_core.settings", "ObservabilitySettings"),
    ],
)
def test_bad_value_fails_at_start_up_naming_the_variable(variable: str, value: str, module: str, kind: str) -> None:
    env = {**os.environ, variable: value}
    code = f"from taskfleet_core.settings import load; from {module} import {kind}; load({kind})"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert variable in proc.stderr
    assert "Traceback" not in proc.stderr
