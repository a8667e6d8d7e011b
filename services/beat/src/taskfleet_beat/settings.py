"""Beat's settings: seed 000's schedule toggles and the leader lock."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from taskfleet_core.settings import FromEnvironment


class BeatSettings(FromEnvironment):
    # --- seed 000 "Configuration" table
    celery_beat_schedule_enabled: bool = Field(True, description="Enable Beat schedule")
    pipeline_sync_interval_hours: int = Field(6, ge=1, le=24, description="Periodic sync interval")
    sync_schedule_hour: int = Field(2, ge=0, le=23, description="Daily sync hour (UTC)")
    # --- the fleet's own
    beat_schedule_file: Path = Field(Path("./var/celerybeat-schedule"), description="Beat's local state file")
    beat_lock_ttl_seconds: int = Field(60, ge=3, description="Beat leader lock TTL; a standby takes over within it")
    beat_canary_interval_seconds: float = Field(0, ge=0, description="Extra health-check entry every N s (0: off)")
    beat_canary_catch_up_seconds: float | None = Field(
        None, ge=0, description="The canary's catch-up window (unset: the default for its interval)"
    )
