"""Overlap locks in Valkey: a scheduled task that must not run twice at once takes one, or skips.

``SET key token NX PX ttl`` takes the lock; only the holder's token releases it (a Lua
compare-and-delete), so a run that outlived its TTL cannot free a lock a later run now
holds. The TTL is the safety net: a holder that dies never blocks the schedule for longer.
The lock can also be handed on (``OverlapLock.held(name, token)``) to the task that ends a
fan-out, e.g. a chord callback, which then releases it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import redis

from taskfleet_core.broker.keys import KEY_PREFIX

log = logging.getLogger(__name__)

LOCK_KEY = KEY_PREFIX + "lock:{name}"

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Take the lock, or keep it when it already carries our token (the same job, redelivered).
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if current then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass
class OverlapLock:
    client: redis.Redis
    name: str
    ttl_seconds: int
    token: str = ""

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
        if self.client.eval(_ACQUIRE, 1, self.key, token, self.ttl_seconds * 1000):
            self.token = token
            return True
        return False

    def holder_ttl(self) -> float | None:
        """Seconds until the current holder's lock expires; None when nobody holds it."""
        ms = self.client.pttl(self.key)
        return None if ms < 0 else ms / 1000

    def extend(self, ttl_seconds: int) -> bool:
        return bool(self.client.eval(_EXTEND, 1, self.key, self.token, ttl_seconds * 1000))

    def release(self) -> bool:
        """Free the lock if we still hold it; False when it had expired or changed hands."""
        if not self.token:
            return False
        released = bool(self.client.eval(_RELEASE, 1, self.key, self.token))
        if not released:
            log.warning("lock %s was no longer ours at release (expired after %ss?)", self.name, self.ttl_seconds)
        return released

    def skip_reason(self) -> str:
        remaining = self.holder_ttl()
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
