"""Each Beat occurrence is sent once across a restart: a real Beat process, a real valkey-server.

Beat records an occurrence (``SET NX`` of its entry and nominal due time, in the script that advances the
entry's record under the leader lock) before it sends it, and stamps the message with that due time
(``taskfleet_beat_due``) and a task id derived from it. The tests count the canary's messages per due time.
Two Beats losing the leader key, and a paused leader: tests/integration/test_beat_leaders.py.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from taskfleet_beat.catchup import Record, RecordStore, occurrence_key
from taskfleet_beat.leader import DUE_HEADER
from taskfleet_core.broker.keys import BEAT_LAST_SENT_KEY, BEAT_LEADER_KEY

from tests.support import beat as support
from tests.support.beat import (
    ACQUIRED,
    CANARY,
    TTL,
    assert_each_occurrence_once,
    canaries,
    pid_of,
    sends_per_occurrence,
    start_beat,
    wait_until,
)
from tests.support.processes import ServiceProcess

#: The fixtures of tests/support/beat.py: their env and database, and the Beats they stop.
beat_env, beat_db, beats = support.beat_env, support.beat_db, support.beats


def test_a_beat_killed_after_a_send_and_restarted_with_its_file_sends_each_occurrence_once(
    beat_env: dict[str, str], beat_db: redis.Redis, tmp_path: Path, beats: list[ServiceProcess]
) -> None:
    """SIGKILL about 1 s after a send, restart with the same schedule file, with the record rolled back.

    The record is set back to before the send (what a Beat trusting its schedule file believes: the re-send
    the issue saw). The restarted Beat takes over within the catch-up window, so it decides to send that
    occurrence late; its recorded occurrence key stops it. The next occurrence is then sent once.
    """
    period = 8  # window 8 s (catchup.default_window): the takeover, at most the 3 s TTL after the kill, is in it
    beats.append(start_beat(beat_env, tmp_path, "beat", ttl=TTL, canary=period))
    assert wait_until(lambda: len(canaries(beat_db)) >= 1, period + 20), beats[0].log()[-3000:]
    time.sleep(1.0)  # about 1 s after a send
    beats[0].signal(signal.SIGKILL)
    assert beats[0].process is not None
    beats[0].process.wait(5)
    [sent] = canaries(beat_db)
    record = Record.decode(beat_db.hget(BEAT_LAST_SENT_KEY, CANARY) or "")
    assert record.due_at == datetime.fromisoformat(sent[DUE_HEADER]), "the occurrence was recorded before the send"
    rolled_back = Record(record.due - period, record.due - period, "sent", record.by)
    beat_db.hset(BEAT_LAST_SENT_KEY, CANARY, rolled_back.encode())

    restarted = start_beat(beat_env, tmp_path, "beat", ttl=TTL, canary=period)  # the same schedule file
    beats.append(restarted)
    restarted.wait_for(ACQUIRED, TTL + 10)
    assert wait_until(lambda: len(canaries(beat_db)) >= 2, period + 5), restarted.log()[-3000:]  # next (or a re-send)
    time.sleep(0.5)
    messages = canaries(beat_db)
    print(f"sends per occurrence across the kill and restart: {dict(sends_per_occurrence(messages))}")
    assert_each_occurrence_once(messages, period)
    assert "was already sent (its occurrence is recorded); not sending it again" in restarted.log()
    assert [h["origin"].startswith(pid_of(restarted)) for h in messages] == [False, True], messages
    assert messages[1][DUE_HEADER] > messages[0][DUE_HEADER]


def test_an_occurrence_is_claimed_once_under_the_lock_and_released_only_by_its_claimer(beat_db: redis.Redis) -> None:
    """The script behind each send, on a real valkey-server: fenced by the lock, ``SET NX`` per occurrence."""
    store = RecordStore(beat_db)
    due, ttl = datetime(2026, 3, 2, 12, 5, tzinfo=UTC), timedelta(minutes=8)
    sent = Record(due.timestamp(), due.timestamp(), "sent", "beat-a").encode()
    beat_db.set(BEAT_LEADER_KEY, "beat-a")
    assert store.claim(CANARY, "", sent, "beat-b", due, ttl) == -1, "not the lock holder: nothing written"
    assert store.claim(CANARY, "", sent, "beat-a", due, ttl) == 1, "claimed: send it"
    assert store.occurrence_holder(CANARY, due) == "beat-a"
    assert 0 < int(beat_db.pttl(occurrence_key(CANARY, due))) <= ttl.total_seconds() * 1000
    # Valkey lost the record (not the occurrence) and beat-b leads now: it reads nothing and claims again.
    beat_db.hdel(BEAT_LAST_SENT_KEY, CANARY)
    beat_db.set(BEAT_LEADER_KEY, "beat-b")
    assert store.claim(CANARY, "", sent, "beat-b", due, ttl) == 2, "already claimed: the record moves on, no send"
    assert beat_db.hget(BEAT_LAST_SENT_KEY, CANARY) == sent
    assert store.release(CANARY, "", sent, "beat-b", due) == 1
    assert store.occurrence_holder(CANARY, due) == "beat-a", "only its claimer releases an occurrence"
    beat_db.set(BEAT_LEADER_KEY, "beat-a")
    assert store.release(CANARY, "", sent, "beat-a", due) == 1, "a failed send is undone, to be retried"
    assert store.occurrence_holder(CANARY, due) is None and beat_db.hget(BEAT_LAST_SENT_KEY, CANARY) is None
