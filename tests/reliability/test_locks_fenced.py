"""Fenced overlap locks against the session's real valkey-server (issue 18).

A redelivered copy of a lock holder does not enter (before: the job id was the token, so it did, and its
release let a third job in while the original ran); a holder working past its TTL keeps the lock; a holder that
lost it notices before acting again, and the store it protects (the sync state row) refuses
its write by fence even when it did not notice (SQLite and PostgreSQL).
"""

from __future__ import annotations

import time
import uuid
import warnings
from pathlib import Path

import pytest
import redis
from celery.exceptions import CDeprecationWarning
from taskfleet_core.broker import inflight
from taskfleet_core.reliability.locks import FencedOut, LockLost, OverlapLock, try_lock
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_data.db import session_for
from taskfleet_data.migrations import upgrade_sync
from taskfleet_data.models import SyncState
from taskfleet_worker_sync.normalise import NormalisedGrant
from taskfleet_worker_sync.store import fence_state, upsert_page


@pytest.fixture
def name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_a_redelivered_copy_of_the_holder_does_not_enter(redis_client: redis.Redis, name: str) -> None:
    original, _ = try_lock(redis_client, name, 60, "job-1")
    assert original is not None
    copy, reason = try_lock(redis_client, name, 60, "job-1")  # the same job, delivered again
    assert copy is None and f"held by {original.token}" in reason
    assert OverlapLock.held(redis_client, name, "job-1").release() is False  # the job id frees nothing
    assert try_lock(redis_client, name, 60, "job-2")[0] is None  # so no third job gets in either
    original.check()  # still the original's
    assert original.release() is True
    after, _ = try_lock(redis_client, name, 60, "job-2")
    assert after is not None and after.fence > original.fence
    after.release()
    redis_client.delete(after.fence_key)  # Valkey lost its data: the counter is gone, the clock is not
    latest, _ = try_lock(redis_client, name, 60, "job-3")
    assert latest is not None and latest.fence > after.fence  # a store keeping the highest fence still accepts it
    latest.release()


def test_a_copy_takes_over_only_from_a_lost_worker(
    redis_client: redis.Redis, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inflight, "_consumer", "live-worker:1:abc")
    redis_client.set(inflight.heartbeat_key("live-worker:1:abc"), "1", ex=60)
    try:
        original, _ = try_lock(redis_client, name, 600, "job-1")
        assert original is not None and original.token.startswith("live-worker:1:abc|job-1:")
        monkeypatch.setattr(inflight, "_consumer", "other-worker:2:def")
        assert try_lock(redis_client, name, 600, "job-1")[0] is None  # its worker is alive: wait for it
        redis_client.delete(inflight.heartbeat_key("live-worker:1:abc"))  # the worker is lost (SIGKILL)
        copy, _ = try_lock(redis_client, name, 600, "job-1")
        assert copy is not None and copy.fence > original.fence  # at once, not after the 600 s TTL
        with pytest.raises(LockLost):
            original.check()
        copy.release()
    finally:
        redis_client.delete(inflight.heartbeat_key("live-worker:1:abc"))


def test_a_holder_working_past_its_ttl_keeps_its_lock(redis_client: redis.Redis, name: str) -> None:
    """TTL 1.5 s, work 4 s: the holder renews every third of the TTL; others are refused all along."""
    lock, _ = try_lock(redis_client, name, 1.5, "job-1")
    assert lock is not None
    refused = 0
    with lock.renewing():
        started = time.monotonic()
        while time.monotonic() - started < 4.0:
            assert try_lock(redis_client, name, 1.5, "job-2")[0] is None
            refused += 1
            time.sleep(0.2)
        lock.check()
    assert refused >= 15 and lock.release() is True


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_lost_lock_is_noticed_and_its_fenced_write_refused(
    redis_client: redis.Redis, name: str, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Holder A pauses past its TTL (a GC pause, SIGSTOP) without a renewer; B takes the lock and writes the
    sync state. A notices (``check``), and the state row refuses A's write by fence even if A does not look."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'grants.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    upgrade_sync(url)
    source = "cordis"
    a, _ = try_lock(redis_client, name, 0.5, "sync-a")
    assert a is not None
    time.sleep(0.7)  # A is paused: its lock expires
    b, _ = try_lock(redis_client, name, 60, "sync-b")
    assert b is not None and b.fence > a.fence

    async def write(fence: int, title: str) -> None:
        async with session_for(url) as session:
            await fence_state(session, source, fence)
            grant = NormalisedGrant(source=source, external_id="g-1", title=title)
            await upsert_page(session, source, [grant])

    async def stored() -> tuple[str, int | None]:
        from sqlalchemy import select
        from taskfleet_data.models import Grant

        async with session_for(url) as session:
            title = await session.scalar(select(Grant.title).where(Grant.external_id == "g-1"))
            state = await session.get(SyncState, source)
            return title, state.fence if state else None

    run_async(lambda: write(b.fence, "by B"))
    with pytest.raises(LockLost):
        a.check()  # A notices before acting again
    with pytest.raises(FencedOut):
        run_async(lambda: write(a.fence, "by A, late"))  # and where it does not look, the store refuses
    assert run_async(stored) == ("by B", b.fence)
    assert b.release() is True and a.release() is False


def test_a_matching_chunk_whose_fan_out_lost_the_lock_writes_nothing(redis_client: redis.Redis) -> None:
    """The fan-out's lock travels in each chunk's arguments; a chunk arriving after it was lost (expired, or a
    newer refresh of the scope holds it) skips before it touches the database."""
    from taskfleet_core.tasks.contracts import MatchChunkArgs
    from taskfleet_worker_matching.tasks import REFRESH_LOCK_TTL, calculate_matches_chunk

    with warnings.catch_warnings():  # finalising Celery's default app here warns about the queue option
        warnings.simplefilter("ignore", CDeprecationWarning)
        chunk = calculate_matches_chunk.__wrapped__.__wrapped__  # the body, as run after validation

    name = f"matching.refresh:test-{uuid.uuid4().hex[:8]}"
    newer, _ = try_lock(redis_client, name, REFRESH_LOCK_TTL, "refresh-2", worker_bound=False)
    assert newer is not None
    result = chunk(calculate_matches_chunk, MatchChunkArgs(company_ids=[1], lock=name, token="refresh-1:stale"))
    assert result["skipped"] is True and "no longer held" in result["reason"]
    assert redis_client.get(newer.key) == newer.token  # the newer refresh's lock is untouched
    newer.release()
