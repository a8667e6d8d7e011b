"""Beat never silently misses: real Beat processes, the production lock TTL (60 s), the catch-up records in Valkey.

* the leader is SIGKILLed 20 s before an entry is due: the standby takes over when the lock lapses (at most the
  TTL after the kill) and sends that entry exactly once, late, within 90 s of the crash;
* a single Beat (no standby) restarted after a gap sends what fell due within the entry's catch-up window, and
  counts what fell due before it as missed (metric and log) without sending it;
* two Beats sharing one health directory run for a minute without crashing each other (probes.touch).

The entry is the canary (``maintenance.health_check``) every 300 s, like seed 000's ``health-check`` (*/5), so
its default catch-up window is the same: 150 s. The test moves its due time by writing its record in Valkey,
as the leader would have after its last send, instead of waiting five minutes.
"""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
from pathlib import Path

import redis
from taskfleet_beat.catchup import Record, RecordStore
from taskfleet_core.broker.keys import BEAT_LAST_SENT_KEY, BEAT_LEADER_KEY, BEAT_MISSED_KEY

from tests.runtime_k8s.conftest import probe
from tests.support import beat
from tests.support.beat import CANARY as ENTRY
from tests.support.beat import canaries, pid_of
from tests.support.processes import ServiceProcess

PRODUCTION_TTL = 60  # BeatSettings.beat_lock_ttl_seconds' default: the takeover time is the point here
PERIOD = 300
WINDOW = PERIOD / 2  # catchup.default_window(300 s)
ACQUIRED = f"leader lock {BEAT_LEADER_KEY} acquired"


def start_beat(env: dict[str, str], tmp: Path, name: str, **extra: str) -> ServiceProcess:
    return beat.start_beat(env, tmp, name, ttl=PRODUCTION_TTL, canary=PERIOD, **extra)


def due_in(db: redis.Redis, seconds: float) -> float:
    """Write the canary's record as if it was last sent so that it is next due ``seconds`` from now."""
    due = time.time() + seconds
    db.hset(BEAT_LAST_SENT_KEY, ENTRY, Record(due - PERIOD, due - PERIOD, "sent", "test").encode())
    return due


def test_standby_sends_what_fell_due_after_the_leader_died_exactly_once(  # type: ignore[no-untyped-def]
    k8s_env, db: redis.Redis, tmp_path: Path
) -> None:
    first = start_beat(k8s_env, tmp_path, "beat-a")
    second = None
    try:
        first.wait_for(ACQUIRED, timeout=20)
        second = start_beat(k8s_env, tmp_path, "beat-b")
        second.wait_for("beat: standby", timeout=20)
        assert canaries(db) == [], "the first leader records a baseline, it does not send at start"

        holder = db.get(BEAT_LEADER_KEY)
        assert holder is not None
        due = due_in(db, 20)
        first.signal(signal.SIGKILL)  # 20 s before the canary is due
        killed_at, killed_wall = time.monotonic(), time.time()
        assert first.process is not None
        first.process.wait(5)

        took_over = sent_after = None
        while time.monotonic() - killed_at < 90:  # watch the whole 90 s: a second send would show up here
            if took_over is None and db.get(BEAT_LEADER_KEY) not in (holder, None):
                took_over = time.monotonic() - killed_at
            if sent_after is None and canaries(db):
                sent_after = time.monotonic() - killed_at
            time.sleep(0.1)
        sent = canaries(db)
        print(
            f"standby took over {took_over}s after SIGKILL (TTL {PRODUCTION_TTL}s); the canary due "
            f"{due - killed_wall:.1f}s after the kill was sent {sent_after}s after it"
        )
        assert took_over is not None and took_over <= PRODUCTION_TTL + 2, took_over
        assert sent_after is not None and sent_after <= 90, "the entry due in the gap was sent"
        assert len(sent) == 1, f"exactly once: {sent}"
        assert sent[0]["origin"].startswith(pid_of(second)), sent
        assert "catch-up: due at" in second.log(), "the late send says so"
        record = Record.decode(db.hget(BEAT_LAST_SENT_KEY, ENTRY))
        assert abs(record.due - due) < 0.01 and record.outcome == "sent", record
        assert db.hget(BEAT_MISSED_KEY, ENTRY) is None
    finally:
        first.stop()
        if second is not None:
            second.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missed_metric(port: int) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(f'taskfleet_beat_missed_total{{entry="{ENTRY}"'):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_restarted_beat_catches_up_within_the_window_and_counts_older_as_missed(  # type: ignore[no-untyped-def]
    k8s_env, db: redis.Redis, tmp_path: Path
) -> None:
    # Beat was down; the canary fell due 30 s ago (inside its 150 s window): sent once at start.
    due_in(db, -30)
    port = free_port()
    beat = start_beat(k8s_env, tmp_path, "beat", METRICS_PORT=str(port), METRICS_ADDR="127.0.0.1")
    try:
        beat.wait_for(ACQUIRED, timeout=20)
        beat.wait_for("catch-up: due at", timeout=10)
        time.sleep(2)
        assert len(canaries(db)) == 1
        assert missed_metric(port) == 0.0, "every entry shows 0 from the start"
    finally:
        beat.stop()

    # Down again; now the canary fell due 200 s ago, outside its window: counted and logged, not sent.
    due_in(db, -200)
    restarted = start_beat(k8s_env, tmp_path, "beat", METRICS_PORT=str(port), METRICS_ADDR="127.0.0.1")
    try:
        restarted.wait_for(ACQUIRED, timeout=20)
        restarted.wait_for(f"MISSED 1 run(s) of {ENTRY}", timeout=10)
        time.sleep(2)
        assert len(canaries(db)) == 1, "the missed run was not sent"
        assert db.hget(BEAT_MISSED_KEY, ENTRY) == "1"
        assert missed_metric(port) == 1.0
        assert Record.decode(db.hget(BEAT_LAST_SENT_KEY, ENTRY)).outcome == "missed"
    finally:
        restarted.stop()


def test_two_beats_sharing_a_health_dir_run_a_minute_without_crashing(  # type: ignore[no-untyped-def]
    k8s_env, db: redis.Redis, tmp_path: Path
) -> None:
    # Fast ticks (a 0.5 s canary, a 3 s TTL: the standby refreshes every second) to touch the files often.
    shared = {"WORKER_HEALTH_DIR": str(tmp_path / "health"), "BEAT_LOCK_TTL_SECONDS": "3"}
    shared["BEAT_CANARY_INTERVAL_SECONDS"] = "0.5"
    beats = [start_beat(k8s_env, tmp_path, name, **shared) for name in ("beat-a", "beat-b")]
    try:
        time.sleep(60)
        for beat in beats:
            assert beat.process is not None and beat.process.poll() is None, beat.log()[-3000:]
            assert "Traceback" not in beat.log(), beat.log()[-3000:]
        assert probe({**beats[0].env}, "live", "beat").returncode == 0
        leftovers = [p.name for p in (tmp_path / "health").iterdir() if p.name.endswith(".tmp")]
        assert leftovers == [], leftovers
    finally:
        for beat in beats:
            beat.stop()


def test_a_record_changes_only_under_the_lock_and_only_from_what_was_read(db: redis.Redis) -> None:
    """The second guard behind the lock: two Beats that both think they lead cannot both claim one due time."""
    store = RecordStore(db)
    db.set(BEAT_LEADER_KEY, "beat-a")
    read = store.read_all().get(ENTRY, "")
    sent_a = Record(100.0, 101.0, "sent", "beat-a").encode()
    sent_b = Record(100.0, 101.5, "sent", "beat-b").encode()
    assert store.swap(ENTRY, read, sent_b, "beat-b") == -1, "not the lock holder: nothing written"
    assert store.swap(ENTRY, read, sent_a, "beat-a") == 1
    db.set(BEAT_LEADER_KEY, "beat-b")  # the lock moved on while beat-b held a stale read
    assert store.swap(ENTRY, read, sent_b, "beat-b") == 0, "the record changed since beat-b read it"
    assert db.hget(BEAT_LAST_SENT_KEY, ENTRY) == sent_a
    missed = Record(400.0, 101.0, "missed", "beat-b").encode()
    assert store.swap(ENTRY, sent_a, missed, "beat-b", missed=2) == 1
    assert store.missed_counts() == {ENTRY: 2}
