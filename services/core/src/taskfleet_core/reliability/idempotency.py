"""Do a side effect once per key, even when the task runs twice (acks_late, redelivery).

``once(key)`` returns the stored result when the effect already happened; after
the effect, ``remember(key, result)`` records it. Keys expire (default 7 days):
longer than any retry or redelivery window, short enough not to grow forever.

``run_once(key, effect)`` is the whole pattern for any side-effecting task (email, notification,
statistics): the stored result if done, else a claim so two copies running at the same time (a
redelivery racing the original) cannot both do the effect -- the loser gets a ``TransientError`` and is
retried later, when it finds the result. The claim is a ``TokenLock`` (reliability/locks.py) with a fresh
token and no re-entry: a second copy of the same job is refused too. Three rules keep it from being
forgotten (issue 18: a Valkey restart while the mail was at SMTP, or an effect longer than the claim, sent
it twice):

* **renewed while the effect runs**: a ``Renewer`` thread renews the claim (owner-checked) every third of
  its TTL, so an effect that outlives the TTL still holds it. The TTL is the hard time limit plus a margin
  (``claim_ttl``): it only matters when the holder died without the reaper noticing.
* **the done-record is retried until Valkey answers**: with backoff, for up to ``REMEMBER_RETRY_SECONDS``
  (a Valkey restart with a long AOF takes seconds, not minutes; the hard time limit cuts it anyway).
* **an unknown outcome keeps the claim**: an effect that raised anything but a ``TransientError`` or
  ``PermanentError`` (which say the effect did not happen: 4xx/5xx from SMTP), or whose done-record could
  not be written, leaves its claim to expire instead of releasing it, so no copy redoes an effect that may
  have happened while the claim lasts.

The claim's token names the worker holding it (``<worker id>|<random>``, broker/inflight.py). When that worker
is lost (its Valkey heartbeat expired: the reaper hands its messages to other workers within seconds), the
redelivered copy takes the claim over in one script instead of waiting for the claim's TTL.

Where the effect's own system can deduplicate, it is the second line: the email's Message-ID is derived from
the idempotency key (worker-email), the monthly statistics row is unique on its month (worker-default).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from taskfleet_core.broker.keys import CLAIM_KEY, IDEMPOTENCY_KEY
from taskfleet_core.reliability.locks import Renewer, TokenLock, take_over_from_lost_worker, worker_token
from taskfleet_core.tasks.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
#: The queues' hard time limit (the effect cannot run longer in a worker).
DEFAULT_TIME_LIMIT = 1800
#: How long the done-record is retried after the effect while Valkey does not answer.
REMEMBER_RETRY_SECONDS = 120.0
#: Backoff between those attempts: doubling from the first to the cap.
REMEMBER_BACKOFF = (0.05, 2.0)

T = TypeVar("T")


def claim_ttl(time_limit: float) -> float:
    """A claim's TTL for an effect whose task has this hard time limit: the limit plus a tenth of it (at least
    1 s), the margin for the result write, the done-record's retries and the process exit after the limit."""
    return time_limit + max(1.0, time_limit / 10)


#: How long a claim outlives a crashed holder (renewed while its holder lives).
DEFAULT_CLAIM_SECONDS = int(claim_ttl(DEFAULT_TIME_LIMIT))


def take_over_from_lost_holder(client: redis.Redis, claim: TokenLock, token: str) -> bool:
    """Take ``claim`` with ``token`` if its holder's worker is lost (no heartbeat). True if taken."""
    return bool(take_over_from_lost_worker(client, claim, token))


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

    def remember_until_answered(self, key: str, result: Any, budget: float = REMEMBER_RETRY_SECONDS) -> bool:
        """``remember``, retried with backoff while Valkey does not answer; False when ``budget`` ran out."""
        deadline = time.monotonic() + budget
        delay, cap = REMEMBER_BACKOFF
        attempts = 0
        while True:
            attempts += 1
            try:
                self.remember(key, result)
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                if time.monotonic() + delay > deadline:
                    log.error("done-record %s:%s not written after %d attempts: %s", self.scope, key, attempts, exc)
                    return False
                time.sleep(delay)
                delay = min(cap, delay * 2)
                continue
            if attempts > 1:
                log.warning("done-record %s:%s written at attempt %d (Valkey was away)", self.scope, key, attempts)
            return True

    def run_once(
        self, key: str, effect: Callable[[], T], claim_seconds: float = DEFAULT_CLAIM_SECONDS
    ) -> tuple[T, bool]:
        """(result, duplicate): the effect's result, or the stored one (duplicate=True) if it already ran."""
        previous = self.previous(key)
        if previous is not None:
            return previous, True
        claim = TokenLock(self.client, CLAIM_KEY.format(scope=self.scope, key=key), claim_seconds)
        token = worker_token()
        if not claim.acquire(token=token) and not take_over_from_lost_holder(self.client, claim, token):
            raise EffectInProgress(f"{self.scope}:{key} is being done by another copy of this job")
        outcome_known = True
        try:
            previous = self.previous(key)  # finished between our check and our claim
            if previous is not None:
                return previous, True
            with Renewer(claim):
                try:
                    result = effect()
                except (TransientError, PermanentError):
                    raise  # the effect says it did not happen (4xx/5xx, bad input): another copy may do it
                except BaseException:
                    outcome_known = False  # it may have happened: keep the claim, let it expire
                    raise
                outcome_known = False  # done, not yet recorded
                outcome_known = self.remember_until_answered(key, result)
            return result, False
        finally:
            if outcome_known:
                self._release(claim)
            else:
                log.warning("%s:%s: outcome unknown, claim kept until it expires", self.scope, key)

    @staticmethod
    def _release(claim: TokenLock) -> None:
        """Free the claim if still ours; a Valkey that does not answer lets it expire instead (nothing is lost)."""
        try:
            claim.try_release()
        except redis.RedisError as exc:
            log.warning("claim %s not released (expires by itself): %s", claim.name, exc)


def claim_seconds(queue: str, time_limit: float | None = None) -> float:
    """A claim's TTL for an effect of ``queue`` (or of a task with its own hard ``time_limit``): ``claim_ttl``,
    and gone before the broker redelivers the message (visibility timeout) if its holder died unnoticed."""
    from taskfleet_core.settings import BrokerSettings, load
    from taskfleet_core.tasks.queues import QUEUES, visibility_timeout

    vt = load(BrokerSettings).broker_visibility_timeout_seconds or visibility_timeout()
    limit = QUEUES[queue].time_limit if time_limit is None else time_limit
    return max(1.0, min(claim_ttl(limit), vt - 1))
