"""Two real Beat processes on one Valkey: exactly one sends; after SIGKILL the other takes over within the TTL.

The TTL here is 3 s, not the production 60 s, and that is fine for what this test checks: the takeover
mechanics (renewals keep the first Beat in charge; the standby reads the lock's PTTL and wakes when it runs out,
so takeover time is "the TTL left at the kill" plus a tick, at any TTL). Whether anything due in that gap is lost
depends on the TTL's length; tests/runtime_k8s/test_beat_catchup.py checks that with the production TTL.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import redis
from taskfleet_core.broker.keys import BEAT_LEADER_KEY

from tests.runtime_k8s.conftest import probe
from tests.support import beat
from tests.support.beat import pid_of
from tests.support.processes import ServiceProcess

TTL = 3
CANARY = 0.5
ACQUIRED = f"leader lock {BEAT_LEADER_KEY} acquired"


def start_beat(env: dict[str, str], tmp: Path, name: str) -> ServiceProcess:
    return beat.start_beat(env, tmp, name, ttl=TTL, canary=CANARY)


def senders(db: redis.Redis) -> list[str]:
    """The origin (pid@host of the sending process) of every message Beat put on the default queue."""
    return [h["origin"] for h in beat.headers(db.lrange("default", 0, -1))]


def test_one_beat_sends_and_a_standby_takes_over_after_sigkill(k8s_env, db: redis.Redis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = start_beat(k8s_env, tmp_path, "beat-a")
    second = None
    try:
        first.wait_for(ACQUIRED, timeout=15)
        second = start_beat(k8s_env, tmp_path, "beat-b")
        second.wait_for("beat: standby", timeout=15)

        # Both run for longer than the TTL: renewals keep the first in charge, the second stays silent.
        time.sleep(TTL + 1.5)
        sent = senders(db)
        assert len(sent) >= 5, sent
        assert all(origin.startswith(pid_of(first)) for origin in sent), sent
        assert "Sending due task" not in second.log()
        assert probe({**second.env}, "live", "beat").returncode == 0, "a standby is alive and ticking"

        first.signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert first.process is not None
        first.process.wait(5)
        before = len(senders(db))  # everything the first Beat sent, up to its death
        assert all(origin.startswith(pid_of(first)) for origin in senders(db)), "the standby stayed silent"
        holder = db.get(BEAT_LEADER_KEY)
        assert holder is not None
        while db.get(BEAT_LEADER_KEY) in (holder, None) and time.monotonic() - killed_at < TTL + 5:
            time.sleep(0.02)
        took_over = time.monotonic() - killed_at
        # The lock lapses at most TTL after the kill; the standby wakes at its expiry (it reads PTTL). The slack
        # is for a loaded 2-core machine, where a woken process may wait for a CPU.
        print(f"standby took over {took_over:.2f}s after SIGKILL (TTL {TTL}s)")
        assert took_over <= TTL + 1.0, f"took over after {took_over:.2f}s"
        second.wait_for(ACQUIRED, timeout=5)

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(senders(db)) < before + 2:
            time.sleep(0.1)
        after = senders(db)[before:]
        assert len(after) >= 2 and all(origin.startswith(pid_of(second)) for origin in after), after
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert db.get(BEAT_LEADER_KEY) is None, "a Beat that stops cleanly frees the lock"
