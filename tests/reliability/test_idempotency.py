"""``IdempotencyStore.run_once`` against a real valkey-server: one effect per key, claims, their TTL and release.

Valkey restarts and effects longer than the claim: tests/reliability/test_effects_once.py."""

from __future__ import annotations

import threading
import uuid

import pytest
from taskfleet_core.broker.keys import CLAIM_KEY
from taskfleet_core.reliability.idempotency import EffectInProgress, IdempotencyStore, claim_seconds, claim_ttl
from taskfleet_core.tasks.errors import TransientError
from taskfleet_core.tasks.queues import visibility_timeout


@pytest.fixture
def store(redis_client) -> IdempotencyStore:
    return IdempotencyStore(redis_client, f"test-{uuid.uuid4().hex[:8]}", ttl_seconds=60)


def test_the_effect_runs_once_per_key_and_the_result_is_replayed(store: IdempotencyStore) -> None:
    calls: list[int] = []
    first, dup1 = store.run_once("k", lambda: calls.append(1) or {"sent": True})
    second, dup2 = store.run_once("k", lambda: calls.append(2) or {"sent": True})
    assert calls == [1] and first == second == {"sent": True} and (dup1, dup2) == (False, True)
    assert 0 < store.client.ttl(store._key("k")) <= 60  # keys expire


def test_a_concurrent_copy_is_told_to_retry_not_to_repeat_the_effect(store: IdempotencyStore) -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_effect() -> str:
        calls.append("original")
        started.set()
        release.wait(5)
        return "done"

    worker = threading.Thread(target=store.run_once, args=("k", slow_effect))
    worker.start()
    started.wait(5)
    with pytest.raises(EffectInProgress) as raised:
        store.run_once("k", lambda: calls.append("copy") or "again")
    assert isinstance(raised.value, TransientError)  # FleetTask retries it with backoff
    release.set()
    worker.join(5)
    assert store.run_once("k", lambda: calls.append("late copy") or "again") == ("done", True)
    assert calls == ["original"]


def test_an_effect_that_says_it_did_not_happen_releases_its_claim(store: IdempotencyStore) -> None:
    def refused() -> None:
        raise TransientError("smtp 421: try again later")  # the server refused: nothing was sent

    with pytest.raises(TransientError):
        store.run_once("k", refused)
    assert store.run_once("k", lambda: "ok") == ("ok", False)


def test_an_unknown_outcome_keeps_the_claim(store: IdempotencyStore) -> None:
    """An effect cut short by anything else (soft time limit, a bug after the send) may have happened: the
    claim stays until it expires, so no copy redoes it meanwhile."""

    def cut_short() -> None:
        raise RuntimeError("soft time limit while the mail was at SMTP")

    with pytest.raises(RuntimeError):
        store.run_once("k", cut_short, claim_seconds=60)
    with pytest.raises(EffectInProgress):
        store.run_once("k", lambda: "again")
    assert 0 < store.client.pttl(CLAIM_KEY.format(scope=store.scope, key="k")) <= 60_000


def test_the_claim_outlives_the_hard_time_limit_by_a_margin() -> None:
    assert claim_ttl(1800) == 1980 and claim_ttl(2) == 3 and claim_ttl(0.5) == 1.5
    assert claim_seconds("email") == 1980 < visibility_timeout()  # gone before the broker redelivers


def test_a_claim_of_a_lost_worker_is_taken_over_and_a_live_one_is_not(
    store: IdempotencyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskfleet_core.broker import inflight

    claim = CLAIM_KEY.format(scope=store.scope, key="k")
    store.client.set(claim, "dead-worker:1:abc|t1", ex=600)  # a worker SIGKILLed mid-effect; no heartbeat
    monkeypatch.setattr(inflight, "_consumer", "other-worker:2:def")
    result, duplicate = store.run_once("k", lambda: "sent")
    assert (result, duplicate) == ("sent", False)
    assert not store.client.exists(claim)  # released by its new holder

    store.client.set(claim, "live-worker:3:ghi|t2", ex=600)
    store.client.set(inflight.heartbeat_key("live-worker:3:ghi"), "1", ex=60)
    try:
        store.client.delete(store._key("k"))  # no result yet: the live holder is still doing the effect
        with pytest.raises(EffectInProgress):
            store.run_once("k", lambda: "again")
    finally:
        store.client.delete(claim, inflight.heartbeat_key("live-worker:3:ghi"))
