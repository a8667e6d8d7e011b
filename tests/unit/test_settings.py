"""Settings: seed 000's variables and defaults; a bad value stops start-up naming the variable."""

import os
import subprocess
import sys

import pytest
from taskfleet_core.settings import Settings

SEED_DEFAULTS = {
    "redis_url": "redis://localhost:6379/0",
    "celery_task_always_eager": False,
    "celery_beat_schedule_enabled": True,
    "pipeline_sync_interval_hours": 6,
    "sync_schedule_hour": 2,
}


def test_seed_configuration_table_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(SEED_DEFAULTS) + ["database_url"]:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings()
    for name, default in SEED_DEFAULTS.items():
        assert getattr(settings, name) == default, name
    assert settings.database_url.startswith("sqlite+aiosqlite://")


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BEAT_SCHEDULE_ENABLED", "false")
    monkeypatch.setenv("SYNC_SCHEDULE_HOUR", "5")
    settings = Settings()
    assert settings.celery_beat_schedule_enabled is False
    assert settings.sync_schedule_hour == 5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SYNC_SCHEDULE_HOUR", "25"),
        ("PIPELINE_SYNC_INTERVAL_HOURS", "zero"),
        ("REDIS_URL", "http://localhost:6379"),
        ("DATABASE_URL", "postgresql://no-async-driver/db"),
        ("CELERY_TASK_ALWAYS_EAGER", "maybe"),
    ],
)
def test_bad_value_fails_at_start_up_naming_the_variable(variable: str, value: str) -> None:
    env = {**os.environ, variable: value}
    proc = subprocess.run(
        [sys.executable, "-c", "from taskfleet_core.settings import load_settings; load_settings()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert variable in proc.stderr
    assert "Traceback" not in proc.stderr
