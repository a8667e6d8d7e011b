"""Locks in Valkey: one primitive, ``TokenLock``, for overlap locks, idempotency claims and the Beat leader.

``TokenLock`` is redis-py's ``redis.lock.Lock``: ``SET key token NX PX ttl`` takes it, only the holder's
token renews it (compare-and-PEXPIRE) or frees it (compare-and-DEL), so a holder that outlived its TTL cannot
free a lock a later holder now has. The TTL is the safety net: a holder that dies blocks nobody for longer.
The fleet fixes four choices on it:

* never blocking: whoever loses skips (overlap lock, standby Beat) or is retried later (idempotency claim);
* not thread-local: the token is the lock's identity and may travel in a message, so another task (a chord
  callback) or process releases what one took;
* ``reentrant=True``: taking a lock that already carries our token renews it instead of failing (Lock's
  reacquire script, then ``SET NX``): a redelivered job finds its own overlap lock, a leader renews its own;
* releasing or renewing a lock that is no longer ours answers False instead of raising ``LockError``: for
  every user that is an expected outcome (the TTL ran out), not an error.

The users, and why each uses it the way it does:

* ``OverlapLock`` (below): a scheduled task that must not run twice at once takes one or skips. Reentrant,
  with the job id as token, because acks_late redelivers the same job after a worker died while holding it.
  The lock can be handed on (``OverlapLock.held(name, token)``) to the task that ends a fan-out.
* ``IdempotencyStore.run_once`` (idempotency.py): a claim with a fresh token, not reentrant, because a second
  copy of the same job running at the same time must be refused, whatever its id.
* ``LeaderLock`` (taskfleet_beat/leader.py): reentrant with the process's token, so one ``acquire`` per tick
  means "renew if mine, else take if free" (redbeat's renew-or-take) and a standby never steals it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from taskfleet_core.broker.keys import LOCK_KEY

log = logging.getLogger(__name__)


class TokenLock(Lock):
    """redis-py's Lock, non-blocking and not thread-local; ``reentrant`` lets the same token take it again."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        ttl_seconds: float,
        *,
        token: str | None = None,
        reentrant: bool = False,
    ) -> None:
        super().__init__(client, key, timeout=ttl_seconds, blocking=False, thread_local=False)
        self.reentrant = reentrant
        self._reacquire_token = client.register_script(Lock.LUA_REACQUIRE_SCRIPT)
        if token:  # a handle on a lock taken elsewhere: its token travelled here
            self.local.token = token.encode()  # bytes, as Lock.acquire stores it

    @property
    def token(self) -> str:
        """The token this handle took the lock with or was given; "" when none."""
        raw = self.local.token
        return raw.decode() if isinstance(raw, bytes) else str(raw or "")

    def do_acquire(self, token: str) -> bool:
        ttl_ms = int((self.timeout or 0) * 1000)
        if self.reentrant and ttl_ms and self._reacquire_token(keys=[self.name], args=[token, ttl_ms]):
            return True
        return super().do_acquire(token)

    def try_release(self) -> bool:
        """Free the lock if it is still ours; False when it had expired or changed hands."""
        try:
            self.release()
        except LockError:
            return False
        return True

    def holder(self) -> str | None:
        """The current holder's token, None when the lock is free."""
        raw = self.redis.get(self.name)
        return raw.decode() if isinstance(raw, bytes) else raw

    def seconds_left(self) -> float | None:
        """Seconds until the current holder's lock expires; None when nobody holds it."""
        ms = self.redis.pttl(self.name)
        return None if ms < 0 else ms / 1000


@dataclass
class OverlapLock:
    client: redis.Redis
    name: str
    ttl_seconds: int
    token: str = ""
    _lock: TokenLock = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lock = TokenLock(self.client, self.key, self.ttl_seconds, token=self.token or None, reentrant=True)

    @property
    def key(self) -> str:
        return LOCK_KEY.format(name=self.name)

    @classmethod
    def held(cls, client: redis.Redis, name: str, token: str, ttl_seconds: int = 0) -> OverlapLock:
        """A handle on a lock taken elsewhere (its token travelled in a message)."""
        return cls(client, name, ttl_seconds, token)

    def acquire(self, token: str | None = None) -> bool:
        """Take the lock; False (and nothing changed) when someone else holds it.

        Pass the job id as ``token`` and a redelivery of the same job finds the lock its own.
        """
        token = token or uuid.uuid4().hex
        if self._lock.acquire(token=token):
            self.token = token
            return True
        return False

    def release(self) -> bool:
        """Free the lock if we still hold it; False when it had expired or changed hands."""
        released = self._lock.try_release()
        if not released and self.token:
            log.warning("lock %s was no longer ours at release (expired after %ss?)", self.name, self.ttl_seconds)
        return released

    def skip_reason(self) -> str:
        remaining = self._lock.seconds_left()
        left = f"; expires in {remaining:.0f}s at the latest" if remaining is not None else ""
        return f"another run holds lock {self.name!r}{left}"


def try_lock(
    client: redis.Redis, name: str, ttl_seconds: int, token: str | None = None
) -> tuple[OverlapLock | None, str]:
    """``(lock, "")`` when taken, else ``(None, reason)`` -- the reason is logged, the caller skips."""
    lock = OverlapLock(client, name, ttl_seconds)
    if lock.acquire(token):
        return lock, ""
    reason = lock.skip_reason()
    log.info("skipping: %s", reason)
    return None, reason
