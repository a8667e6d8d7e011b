"""Each Beat occurrence is sent once: real Beat processes, a real valkey-server, every message counted.

Beat records an occurrence (``SET NX`` of its entry and nominal due time, in the script that advances the
entry's record under the leader lock) before it sends it, and stamps the message with that due time
(``taskfleet_beat_due``) and a task id derived from it. Each test counts the canary's messages per due time:

* a Beat SIGKILLed about 1 s after a send and restarted with the same schedule file;
* two Beats while the leader key is lost again and again (``DEL``, then whole-database ``FLUSHDB``), handing
  the lead back and forth: a leader that still believes it leads must not send what the other sent;
* the leader SIGSTOPped for longer than the lock TTL, the standby takes over, then SIGCONT.

The lock TTL is 3 s, not the production 60 s: the handover mechanics are the same at any TTL (the standby wakes
when the lock lapses), and what is under test is the count per occurrence, not the takeover time.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from taskfleet_beat.catchup import Record, RecordStore, occurrence_id, occurrence_key
from taskfleet_beat.leader import DUE_HEADER
from taskfleet_core.broker.keys import BEAT_LAST_SENT_KEY, BEAT_LEADER_KEY

from tests.support.beat import CANARY, canaries, headers, pid_of, sends_per_occurrence, start_beat
from tests.support.processes import ServiceProcess

TTL = 3
#: A database no other test uses: the tests count list entries and flush it.
DB = 9
ACQUIRED = f"leader lock {BEAT_LEADER_KEY} acquired"


@pytest.fixture
def env(fleet_env: dict[str, str]) -> dict[str, str]:
    return {**fleet_env, "REDIS_URL": fleet_env["REDIS_URL"].rsplit("/", 1)[0] + f"/{DB}"}


@pytest.fixture
def db(env: dict[str, str]) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def beats() -> Iterator[list[ServiceProcess]]:
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


def assert_each_occurrence_once(messages: list[dict]) -> None:  # type: ignore[type-arg]
    counts = sends_per_occurrence(messages)
    doubles = {due: n for due, n in counts.items() if n > 1}
    assert doubles == {}, f"occurrences sent more than once: {doubles}"
    for h in messages:  # the task id is the occurrence's: every Beat and every retry would send the same one
        assert h["id"] == occurrence_id(CANARY, datetime.fromisoformat(h[DUE_HEADER])), h


def test_a_beat_killed_after_a_send_and_restarted_with_its_file_sends_each_occurrence_once(
    env: dict[str, str], db: redis.Redis, tmp_path: Path, beats: list[ServiceProcess]
) -> None:
    beats.append(start_beat(env, tmp_path, "beat", ttl=TTL, canary=2))
    assert wait_until(lambda: len(canaries(db)) >= 1, 20), beats[0].log()[-3000:]
    time.sleep(1.0)  # about 1 s after a send
    beats[0].signal(signal.SIGKILL)
    assert beats[0].process is not None
    beats[0].process.wait(5)
    before = canaries(db)

    beats.append(start_beat(env, tmp_path, "beat", ttl=TTL, canary=2))  # the same schedule file
    assert wait_until(lambda: len(canaries(db)) >= len(before) + 3, TTL + 20), beats[1].log()[-3000:]
    after = canaries(db)[len(before) :]
    print(f"before the kill: {sends_per_occurrence(before)}; after the restart: {sends_per_occurrence(after)}")
    assert all(h["origin"].startswith(pid_of(beats[1])) for h in after), after
    last_before = max(h[DUE_HEADER] for h in before)
    assert min(h[DUE_HEADER] for h in after) > last_before, "the restarted Beat re-sent an occurrence"
    assert_each_occurrence_once(before + after)


def test_two_beats_losing_the_leader_key_send_each_occurrence_once(
    env: dict[str, str], db: redis.Redis, tmp_path: Path, beats: list[ServiceProcess]
) -> None:
    beats.append(start_beat(env, tmp_path, "beat-a", ttl=TTL, canary=0.5))
    beats[0].wait_for(ACQUIRED, timeout=20)
    beats.append(start_beat(env, tmp_path, "beat-b", ttl=TTL, canary=0.5))
    beats[1].wait_for("beat: standby", timeout=20)
    seen: list[dict] = []  # type: ignore[type-arg]

    def lose(flush: bool) -> None:
        """Lose the leader key: DEL it, or FLUSHDB (records and occurrences go too; what was sent is kept)."""
        if not flush:
            db.delete(BEAT_LEADER_KEY)
            return
        listed, _ = db.pipeline(transaction=True).lrange("default", 0, -1).flushdb().execute()
        seen.extend(headers(listed))

    handovers = 0
    for flush in (False, False, True, True):
        holder = db.get(BEAT_LEADER_KEY)
        # Lose the key just after the leader renewed it (the standby, which polls the lock, is then likely the
        # first to find it free), until the other Beat wins it: a handover.
        for _ in range(6):
            wait_until(lambda: int(db.pttl(BEAT_LEADER_KEY)) > TTL * 1000 - 150, 2)
            lose(flush)
            if wait_until(lambda old=holder: db.get(BEAT_LEADER_KEY) not in (None, old), 1.2):
                handovers += 1
                break
        time.sleep(1.0)  # both Beats act in this slot: the old leader may still believe it leads
    time.sleep(1.5)
    seen.extend(canaries(db))
    counts = sends_per_occurrence(seen)
    senders = {h["origin"].split("@")[0] for h in seen}
    print(f"{handovers} handovers, {len(counts)} occurrences, {len(seen)} messages, senders {senders}")
    assert handovers >= 3 and len(senders) == 2, (handovers, senders)
    assert len(counts) >= 10
    assert_each_occurrence_once(seen)


def test_a_leader_paused_past_its_lock_ttl_does_not_send_what_the_standby_sent(
    env: dict[str, str], db: redis.Redis, tmp_path: Path, beats: list[ServiceProcess]
) -> None:
    first = start_beat(env, tmp_path, "beat-a", ttl=TTL, canary=0.5)
    beats.append(first)
    first.wait_for(ACQUIRED, timeout=20)
    second = start_beat(env, tmp_path, "beat-b", ttl=TTL, canary=0.5)
    beats.append(second)
    second.wait_for("beat: standby", timeout=20)
    holder = db.get(BEAT_LEADER_KEY)

    first.signal(signal.SIGSTOP)
    assert wait_until(lambda: db.get(BEAT_LEADER_KEY) not in (None, holder), TTL + 3), "the standby took over"
    time.sleep(1.5)
    first.signal(signal.SIGCONT)  # it wakes in the middle of a tick it believes it leads
    first.wait_for("beat: standby", timeout=TTL + 2)
    resumed = len(canaries(db))
    time.sleep(2.0)
    messages = canaries(db)
    print(f"{len(messages)} messages, {len(sends_per_occurrence(messages))} occurrences")
    assert all(h["origin"].startswith(pid_of(second)) for h in messages[resumed:]), "only the new leader sends"
    assert any(h["origin"].startswith(pid_of(first)) for h in messages), "the first Beat led before the pause"
    assert_each_occurrence_once(messages)


def test_an_occurrence_is_claimed_once_under_the_lock_and_released_only_by_its_claimer(db: redis.Redis) -> None:
    """The script behind each send, on a real valkey-server: fenced by the lock, ``SET NX`` per occurrence."""
    store = RecordStore(db)
    due, ttl = datetime(2026, 3, 2, 12, 5, tzinfo=UTC), timedelta(minutes=8)
    sent = Record(due.timestamp(), due.timestamp(), "sent", "beat-a").encode()
    db.set(BEAT_LEADER_KEY, "beat-a")
    assert store.claim(CANARY, "", sent, "beat-b", due, ttl) == -1, "not the lock holder: nothing written"
    assert store.claim(CANARY, "", sent, "beat-a", due, ttl) == 1, "claimed: send it"
    assert store.occurrence_holder(CANARY, due) == "beat-a"
    assert 0 < int(db.pttl(occurrence_key(CANARY, due))) <= ttl.total_seconds() * 1000
    # Valkey lost the record (not the occurrence) and beat-b leads now: it reads nothing and claims again.
    db.hdel(BEAT_LAST_SENT_KEY, CANARY)
    db.set(BEAT_LEADER_KEY, "beat-b")
    assert store.claim(CANARY, "", sent, "beat-b", due, ttl) == 2, "already claimed: the record moves on, no send"
    assert db.hget(BEAT_LAST_SENT_KEY, CANARY) == sent
    assert store.release(CANARY, "", sent, "beat-b", due) == 1
    assert store.occurrence_holder(CANARY, due) == "beat-a", "only its claimer releases an occurrence"
    db.set(BEAT_LEADER_KEY, "beat-a")
    assert store.release(CANARY, "", sent, "beat-a", due) == 1, "a failed send is undone, to be retried"
    assert store.occurrence_holder(CANARY, due) is None and db.hget(BEAT_LAST_SENT_KEY, CANARY) is None
