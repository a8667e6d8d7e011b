"""Two Beats, one leader at a time, each occurrence once: real Beat processes, a real valkey-server.

* the leader key is lost again and again (``DEL``, then whole-database ``FLUSHDB``) while the leader is briefly
  descheduled, so the other Beat wins it and the old one resumes still believing it leads: it must not send
  what the other sent;
* the leader is SIGSTOPped for longer than the lock TTL, the standby takes over, then SIGCONT.

The lock TTL is 3 s, not the production 60 s: the handover mechanics are the same at any TTL (the standby wakes
when the lock lapses), and what is under test is the count per occurrence (``taskfleet_beat_due`` header), not
the takeover time.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import redis
from taskfleet_core.broker.keys import BEAT_LEADER_KEY

from tests.support import beat as support
from tests.support.beat import (
    ACQUIRED,
    TTL,
    assert_each_occurrence_once,
    canaries,
    headers,
    pid_of,
    sends_per_occurrence,
    start_beat,
    wait_until,
)
from tests.support.processes import ServiceProcess

#: The fixtures of tests/support/beat.py: their env and database, and the Beats they stop.
beat_env, beat_db, beats = support.beat_env, support.beat_db, support.beats

CANARY_PERIOD = 0.5


def test_two_beats_losing_the_leader_key_send_each_occurrence_once(
    beat_env: dict[str, str], beat_db: redis.Redis, tmp_path: Path, beats: list[ServiceProcess]
) -> None:
    beats.append(start_beat(beat_env, tmp_path, "beat-a", ttl=TTL, canary=CANARY_PERIOD))
    beats[0].wait_for(ACQUIRED, timeout=20)
    beats.append(start_beat(beat_env, tmp_path, "beat-b", ttl=TTL, canary=CANARY_PERIOD))
    beats[1].wait_for("beat: standby", timeout=20)
    seen: list[dict] = []  # type: ignore[type-arg]

    def lose(flush: bool) -> None:
        """Lose the leader key: DEL it, or FLUSHDB (records and occurrences go too; what was sent is kept)."""
        if not flush:
            beat_db.delete(BEAT_LEADER_KEY)
            return
        listed, _ = beat_db.pipeline(transaction=True).lrange("default", 0, -1).flushdb().execute()
        seen.extend(headers(listed))

    def process_of(token: str) -> ServiceProcess:
        pid = int(token.split(":")[1])  # host:pid:random
        return next(proc for proc in beats if proc.process is not None and proc.process.pid == pid)

    handovers = 0
    for flush in (False, False, True, True):
        holder = beat_db.get(BEAT_LEADER_KEY)
        assert holder is not None
        leader = process_of(holder)
        # The key is lost while the leader is briefly descheduled (a stalled node, a long GC), just after it
        # renewed the lock: the standby wins the free key, and the old leader resumes with about two seconds of
        # its lease left, still believing it leads: two leaders, the dangerous case.
        wait_until(lambda: int(beat_db.pttl(BEAT_LEADER_KEY)) > TTL * 1000 - 150, 2)
        leader.signal(signal.SIGSTOP)
        lose(flush)
        took = wait_until(lambda old=holder: beat_db.get(BEAT_LEADER_KEY) not in (None, old), 1.5)
        leader.signal(signal.SIGCONT)
        assert took, "the standby took the lost key"
        handovers += 1
        time.sleep(1.0)  # both Beats act in this slot: the old leader still believes it leads
    time.sleep(1.5)
    seen.extend(canaries(beat_db))
    counts = sends_per_occurrence(seen)
    senders = {h["origin"].split("@")[0] for h in seen}
    print(f"{handovers} handovers, {len(counts)} occurrences, {len(seen)} messages, senders {senders}")
    assert handovers == 4 and len(senders) == 2, (handovers, senders)
    assert "lost the leader lock before sending" in "".join(b.log() for b in beats), "a stale leader tried"
    assert len(counts) >= 10
    assert_each_occurrence_once(seen, CANARY_PERIOD)


def test_a_leader_paused_past_its_lock_ttl_does_not_send_what_the_standby_sent(
    beat_env: dict[str, str], beat_db: redis.Redis, tmp_path: Path, beats: list[ServiceProcess]
) -> None:
    first = start_beat(beat_env, tmp_path, "beat-a", ttl=TTL, canary=CANARY_PERIOD)
    beats.append(first)
    first.wait_for(ACQUIRED, timeout=20)
    second = start_beat(beat_env, tmp_path, "beat-b", ttl=TTL, canary=CANARY_PERIOD)
    beats.append(second)
    second.wait_for("beat: standby", timeout=20)
    holder = beat_db.get(BEAT_LEADER_KEY)

    first.signal(signal.SIGSTOP)
    assert wait_until(lambda: beat_db.get(BEAT_LEADER_KEY) not in (None, holder), TTL + 3), "the standby took over"
    time.sleep(1.5)
    first.signal(signal.SIGCONT)  # it wakes in the middle of a tick it believes it leads
    first.wait_for("beat: standby", timeout=TTL + 2)
    resumed = len(canaries(beat_db))
    time.sleep(2.0)
    messages = canaries(beat_db)
    print(f"{len(messages)} messages, {len(sends_per_occurrence(messages))} occurrences")
    assert all(h["origin"].startswith(pid_of(second)) for h in messages[resumed:]), "only the new leader sends"
    assert any(h["origin"].startswith(pid_of(first)) for h in messages), "the first Beat led before the pause"
    assert_each_occurrence_once(messages, CANARY_PERIOD)
