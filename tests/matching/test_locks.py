"""The overlap lock against the session's real redis-server."""

from __future__ import annotations

import time
import uuid

from taskfleet_core.reliability.locks import OverlapLock, try_lock


def test_second_holder_skips_with_a_reason_until_released(redis_client) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    first, reason = try_lock(redis_client, name, 60)
    assert first is not None and reason == ""
    second, reason = try_lock(redis_client, name, 60)
    assert second is None and reason.startswith(f"another run holds lock {name!r}; expires in")
    assert first.release() is True
    third, _ = try_lock(redis_client, name, 60)
    assert third is not None
    third.release()


def test_only_the_holder_releases_and_a_redelivered_copy_does_not_enter(redis_client) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    lock = OverlapLock(redis_client, name, 60)
    assert lock.acquire("job-1")
    assert not OverlapLock(redis_client, name, 60).acquire("job-1")  # the same job, redelivered: another execution
    assert not OverlapLock(redis_client, name, 60).acquire("job-2")
    assert OverlapLock.held(redis_client, name, "job-1").release() is False  # the job id is not the token
    assert redis_client.get(lock.key) == lock.token and lock.token.startswith("job-1:")
    assert OverlapLock.held(redis_client, name, lock.token).release() is True
    assert redis_client.exists(lock.key) == 0


def test_the_ttl_frees_a_lock_whose_holder_died(redis_client) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    assert OverlapLock(redis_client, name, 1).acquire()
    assert not OverlapLock(redis_client, name, 1).acquire()
    time.sleep(1.1)
    late = OverlapLock(redis_client, name, 1)
    assert late.acquire()
    late.release()
