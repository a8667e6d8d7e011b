"""Do a side effect once per key, even when the task runs twice (acks_late, redelivery).

``once(key)`` returns the stored result when the effect already happened; after
the effect, ``remember(key, result)`` records it. Keys expire (default 7 days):
longer than any retry or redelivery window, short enough not to grow forever.

``run_once(key, effect)`` is the whole pattern for any side-effecting task (email, notification,
statistics): the stored result if done, else a short claim so two copies running at the same
time (a redelivery racing the original) cannot both do the effect -- the loser gets a
``TransientError`` and is retried later, when it finds the result. The claim is a ``TokenLock``
(reliability/locks.py) with a fresh token and no re-entry: a second copy of the same job is refused too.

The claim's token names the worker holding it (``<worker id>|<random>``, broker/inflight.py). When that worker
is lost (its Valkey heartbeat expired: the reaper hands its messages to other workers within seconds), the
redelivered copy takes the claim over in one script instead of waiting for the claim's TTL (the time limit).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from taskfleet_core.broker import inflight
from taskfleet_core.broker.keys import CLAIM_KEY, IDEMPOTENCY_KEY
from taskfleet_core.reliability.locks import TokenLock
from taskfleet_core.tasks.errors import TransientError

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
#: How long a claim outlives a crashed holder: the queues' hard time limit (the effect cannot run longer).
DEFAULT_CLAIM_SECONDS = 1800

T = TypeVar("T")


#: Take a claim over from a lost holder: only if it still holds the token seen and its heartbeat key is gone.
TAKE_OVER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


def take_over_from_lost_holder(client: redis.Redis, claim: TokenLock, token: str) -> bool:
    """Take ``claim`` with ``token`` if its holder's worker is lost (no heartbeat). True if taken."""
    current = claim.holder()
    if not current or "|" not in current:
        return False
    holder = current.split("|", 1)[0]
    ttl_ms = int((claim.timeout or 1) * 1000)
    keys = [claim.name, inflight.heartbeat_key(holder)]
    if not client.eval(TAKE_OVER, 2, *keys, current, token, ttl_ms):
        return False
    claim.local.token = token.encode()
    return True


class EffectInProgress(TransientError):
    """Another copy of this job holds the claim right now; retry later and find its result."""


class IdempotencyStore:
    def __init__(self, client: redis.Redis, scope: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self.client = client
        self.scope = scope
        self.ttl = ttl_seconds

    def _key(self, key: str) -> str:
        return IDEMPOTENCY_KEY.format(scope=self.scope, key=key)

    def previous(self, key: str) -> Any | None:
        raw = self.client.get(self._key(key))
        return None if raw is None else json.loads(raw)

    def remember(self, key: str, result: Any) -> None:
        self.client.set(self._key(key), json.dumps(result), ex=self.ttl)

    def run_once(self, key: str, effect: Callable[[], T], claim_seconds: int = DEFAULT_CLAIM_SECONDS) -> tuple[T, bool]:
        """(result, duplicate): the effect's result, or the stored one (duplicate=True) if it already ran."""
        previous = self.previous(key)
        if previous is not None:
            return previous, True
        claim = TokenLock(self.client, CLAIM_KEY.format(scope=self.scope, key=key), claim_seconds)
        holder = inflight.consumer_id()
        token = f"{holder}|{uuid.uuid4().hex}" if holder else uuid.uuid4().hex
        if not claim.acquire(token=token) and not take_over_from_lost_holder(self.client, claim, token):
            raise EffectInProgress(f"{self.scope}:{key} is being done by another copy of this job")
        try:
            previous = self.previous(key)  # finished between our check and our claim
            if previous is not None:
                return previous, True
            result = effect()
            self.remember(key, result)
            return result, False
        finally:
            claim.try_release()  # only if still ours: it may have expired and been taken by another copy


def claim_seconds(queue: str) -> int:
    """A claim outlives a crashed holder by at most the queue's time limit, and is gone before the broker
    redelivers the message (visibility timeout), so the redelivered copy can do the effect."""
    from taskfleet_core.settings import BrokerSettings, load
    from taskfleet_core.tasks.queues import QUEUES, visibility_timeout

    vt = load(BrokerSettings).broker_visibility_timeout_seconds or visibility_timeout()
    return max(1, min(QUEUES[queue].time_limit, vt - 1))
