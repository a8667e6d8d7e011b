"""Real Beat processes for the tests, and the canary messages they put on the default queue."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from taskfleet_beat.leader import DUE_HEADER
from taskfleet_beat.metrics import ENTRY_HEADER

from tests.support.processes import ServiceProcess

#: The canary entry (an extra ``maintenance.health_check``, taskfleet_beat/leader.py canary_schedule).
CANARY = "beat-canary"


def start_beat(env: dict[str, str], tmp: Path, name: str, *, ttl: float, canary: float, **extra: str) -> ServiceProcess:
    """A ``python -m taskfleet_beat`` sending only the canary every ``canary`` s, with a ``ttl`` s leader lock.

    ``name`` picks its schedule file and health directory: start it again under the same name and it restarts
    with the same schedule file (as a container restarted in its pod keeps its emptyDir).
    """
    beat_env = {
        **env,
        "CELERY_BEAT_SCHEDULE_ENABLED": "false",  # seed 000's table fires hourly at best; the canary fires fast
        "BEAT_CANARY_INTERVAL_SECONDS": str(canary),
        "BEAT_LOCK_TTL_SECONDS": str(ttl),
        "BEAT_SCHEDULE_FILE": str(tmp / name / "celerybeat-schedule"),
        "WORKER_HEALTH_DIR": str(tmp / name / "health"),
        **extra,
    }
    return ServiceProcess("taskfleet_beat", tmp / f"{name}.log", beat_env).start(ready_marker="beat: Starting")


def headers(raw_messages: list[Any]) -> list[dict[str, Any]]:
    """The headers of LPUSHed kombu envelopes (as ``LRANGE`` returns them), oldest first."""
    return [json.loads(raw)["headers"] for raw in reversed(raw_messages)]


def canaries(db: redis.Redis) -> list[dict[str, Any]]:
    """Headers of every canary message on the default queue, oldest first."""
    return [h for h in headers(db.lrange("default", 0, -1)) if h.get(ENTRY_HEADER) == CANARY]


def sends_per_occurrence(messages: list[dict[str, Any]]) -> Counter[str]:
    """How many messages each canary occurrence (its nominal due time) was sent in."""
    return Counter(str(h[DUE_HEADER]) for h in messages if h.get(ENTRY_HEADER) == CANARY)


def pid_of(proc: ServiceProcess) -> str:
    """The prefix of the ``origin`` header of the messages ``proc`` sent."""
    assert proc.process is not None
    return f"gen{proc.process.pid}@"
