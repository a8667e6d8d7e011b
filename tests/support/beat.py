"""Real Beat processes for the tests, the canary messages they put on the default queue, and their counting.

The fixtures ``beat_env``, ``beat_db`` and ``beats`` are imported by the Beat test modules that use them.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from taskfleet_beat.catchup import occurrence_id
from taskfleet_beat.leader import DUE_HEADER
from taskfleet_beat.metrics import ENTRY_HEADER
from taskfleet_core.broker.keys import BEAT_LEADER_KEY

from tests.support.processes import ServiceProcess

#: The canary entry (an extra ``maintenance.health_check``, taskfleet_beat/leader.py canary_schedule).
CANARY = "beat-canary"
#: The leader lock's TTL in the occurrence tests: the handover mechanics are the same at any TTL.
TTL = 3
#: A database no other test uses: the Beat occurrence tests count list entries and flush it.
DB = 9
ACQUIRED = f"leader lock {BEAT_LEADER_KEY} acquired"


@pytest.fixture
def beat_env(fleet_env: dict[str, str]) -> dict[str, str]:
    return {**fleet_env, "REDIS_URL": fleet_env["REDIS_URL"].rsplit("/", 1)[0] + f"/{DB}"}


@pytest.fixture
def beat_db(beat_env: dict[str, str]) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(beat_env["REDIS_URL"], decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def beats() -> Iterator[list[ServiceProcess]]:
    """Beat processes a test started; all stopped after it (a paused one is resumed first)."""
    started: list[ServiceProcess] = []
    yield started
    for proc in started:
        proc.signal(signal.SIGCONT)  # a paused Beat would never see the SIGTERM
        proc.stop()


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


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


def assert_each_occurrence_once(messages: list[dict[str, Any]], period: float) -> None:
    """One message per canary occurrence, one occurrence per slot of the period, all on the epoch grid.

    The slot check matters as much as the count: two Beats that disagree on the nominal due time would send
    "different" occurrences in the same slot.
    """
    counts = sends_per_occurrence(messages)
    doubles = {due: n for due, n in counts.items() if n > 1}
    assert doubles == {}, f"occurrences sent more than once: {doubles}"
    slots = Counter(math.floor(datetime.fromisoformat(due).timestamp() / period) for due in counts)
    crowded = sorted(slot * period for slot, n in slots.items() if n > 1)
    assert crowded == [], f"more than one send in the {period}s slots starting at (unix s) {crowded}"
    off_grid = [due for due in counts if (datetime.fromisoformat(due).timestamp() / period) % 1]
    assert off_grid == [], f"occurrences off the {period}s grid (a Beat with its own idea of the due time): {off_grid}"
    for h in messages:  # the task id is the occurrence's: every Beat and every retry would send the same one
        assert h["id"] == occurrence_id(CANARY, datetime.fromisoformat(h[DUE_HEADER])), h
