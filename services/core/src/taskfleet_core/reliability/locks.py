"""Locks in Valkey: ``TokenLock`` (the primitive), its ``Renewer``, and ``OverlapLock`` (fenced, per execution).

``TokenLock`` is redis-py's ``redis.lock.Lock``: ``SET key token NX PX ttl`` takes it, only the holder's
token renews it (compare-and-PEXPIRE) or frees it (compare-and-DEL), so a holder that outlived its TTL cannot
free a lock a later holder now has. The TTL is the safety net: a holder that dies blocks nobody for longer.
The fleet fixes four choices on it:

* never blocking: whoever loses skips (overlap lock, standby Beat) or is retried later (idempotency claim);
* not thread-local: the token is the lock's identity and may travel in a message, so another task (a chord
  callback) or process releases what one took, and a ``Renewer`` thread renews what its holder took;
* ``reentrant=True`` (only the Beat's leader lock uses it): taking a lock that already carries our token
  renews it instead of failing: one ``acquire`` per tick means "renew if mine, else take if free";
* releasing or renewing a lock that is no longer ours answers False instead of raising ``LockError``: for
  every user that is an expected outcome (the TTL ran out), not an error.

A holder that works longer than a TTL keeps its lock with a ``Renewer``: a daemon thread that renews it
(owner-checked) every third of the TTL, so one or two renewals may fail (Valkey restarting) without losing
it, and that records when Valkey answers "not yours" (``lost``).

``OverlapLock`` is what a task that must not run twice at once takes. Two rules make it safe under
redelivery (issue 18: with the job id as token, a redelivered copy entered the lock its original still held,
and its release let a third job in while the original ran):

* **a token per execution**: ``<worker>|<job id>:<random>``, fresh for every delivery. A redelivered copy of
  the holder skips; it never enters. If the holder's worker is lost (its heartbeat key expired, the reaper's
  signal, broker/inflight.py), the copy takes the lock over in one script instead of waiting for the TTL.
* **a fence per acquisition**: taking the lock draws the next number of a counter that outlives the lock
  (``FENCE_KEY``; Valkey's clock in µs or the last fence + 1, so it also grows across a data loss); the
  holder carries the number to the store it protects, which keeps the highest number it saw and refuses a
  write carrying a lower one. A holder that lost its lock (paused past its TTL, then taken over) is refused
  there even if it has not noticed; ``check()`` is how it notices, before it acts again.

``IdempotencyStore.run_once`` (idempotency.py) uses ``TokenLock`` with a ``Renewer`` as its effect claim,
and ``take_over_from_lost_worker`` for a claim whose holder died.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from taskfleet_core.broker import inflight
from taskfleet_core.broker.keys import FENCE_KEY, LOCK_KEY

log = logging.getLogger(__name__)


class LockLost(RuntimeError):
    """The holder's lock expired or changed hands: it must not act on what the lock protects any more."""


class FencedOut(LockLost):
    """A store refused a write: it has seen a newer holder's fence than the one this write carries."""


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

    def renew(self) -> bool:
        """Reset the TTL to its full length if the lock is still ours; False when it is not (expired, taken).

        Valkey being unreachable raises (``redis.RedisError``): the caller cannot know, and tries again."""
        if not self.token or not self.timeout:
            return False
        ttl_ms = int(self.timeout * 1000)
        return bool(self._reacquire_token(keys=[self.name], args=[self.token, ttl_ms]))

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


class Renewer:
    """Renews ``lock`` every ``ttl/3`` from a daemon thread while its holder works (``with Renewer(lock):``).

    A renewal Valkey does not answer (restart, failover) is retried sooner; the TTL leaves room for two
    misses. When Valkey answers that the lock is not ours any more, ``lost`` is set and renewing stops:
    the holder checks it (``OverlapLock.check``) before it acts again.
    """

    def __init__(self, lock: TokenLock, interval: float | None = None) -> None:
        self.lock = lock
        self.interval = interval if interval is not None else max(0.05, float(lock.timeout or 0) / 3)
        self.lost = threading.Event()
        self.renewals = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"renew {lock.name}", daemon=True)

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                renewed = self.lock.renew()
            except redis.RedisError as exc:  # unknown: keep trying, more often, until Valkey answers
                self.failures += 1
                wait = max(0.05, self.interval / 4)
                log.warning("could not renew %s (will retry): %s", self.lock.name, exc)
                continue
            if not renewed:
                self.lost.set()
                log.warning("lock %s was lost (expired or taken) while its holder worked", self.lock.name)
                return
            self.renewals += 1
            wait = self.interval

    def start(self) -> Renewer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def __enter__(self) -> Renewer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def worker_token(label: str = "") -> str:
    """A fresh token that names this process's worker (``<worker>|<label>:<random>``, broker/inflight.py), so a
    lock or claim whose worker was lost can be taken over; just ``<label>:<random>`` outside a worker."""
    execution = f"{label}:{uuid.uuid4().hex}" if label else uuid.uuid4().hex
    holder = inflight.consumer_id()
    return f"{holder}|{execution}" if holder else execution


#: Draw the next fence from the counter at KEYS[i]: Valkey's clock in microseconds, or the last fence + 1 when that
#: is larger. It grows with every acquisition, and also across a Valkey data loss (the counter is gone, the clock
#: is not), so a store that kept the highest fence it saw never refuses every later holder.
NEXT_FENCE = """
local function next_fence(key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local fence = math.max(now, tonumber(redis.call('GET', key) or '0') + 1)
  redis.call('SET', key, string.format('%d', fence))
  return fence
end
"""

#: Take a lock over from a lost holder: only if it still holds the token seen and its worker's heartbeat is gone.
#: KEYS: lock, heartbeat of the holder's worker, fence counter (ARGV[4] '0': no fence). Returns the new fence
#: (1 without one), 0 when not taken.
TAKE_OVER = (
    NEXT_FENCE
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '1' then return next_fence(KEYS[3]) end
return 1
"""
)


def take_over_from_lost_worker(client: redis.Redis, lock: TokenLock, token: str, fence_key: str = "") -> int:
    """Take ``lock`` with ``token`` if its holder's worker is lost (no heartbeat). The new fence (or 1), 0 if not."""
    current = lock.holder()
    if not current or "|" not in current:
        return 0
    worker = current.split("|", 1)[0]
    ttl_ms = int((lock.timeout or 1) * 1000)
    keys = [lock.name, inflight.heartbeat_key(worker), fence_key or lock.name]
    taken = int(client.eval(TAKE_OVER, 3, *keys, current, token, ttl_ms, "1" if fence_key else "0"))
    if taken:
        lock.local.token = token.encode()
        log.warning("took lock %s over from lost worker %s", lock.name, worker)
    return taken


#: Take a free lock and draw its fence in one step. Returns the fence, 0 when the lock is held.
ACQUIRE_FENCED = (
    NEXT_FENCE
    + """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
return next_fence(KEYS[2])
"""
)


@dataclass
class OverlapLock:
    """A fenced lock held by one execution of a task; see the module docstring."""

    client: redis.Redis
    name: str
    ttl_seconds: float
    token: str = ""
    #: The fence drawn when this execution took the lock (0: not taken here, or a handle without one).
    fence: int = 0
    _lock: TokenLock = field(init=False, repr=False)
    _renewer: Renewer | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self._lock = TokenLock(self.client, self.key, self.ttl_seconds, token=self.token or None)

    @property
    def key(self) -> str:
        return LOCK_KEY.format(name=self.name)

    @property
    def fence_key(self) -> str:
        return FENCE_KEY.format(name=self.name)

    @classmethod
    def held(cls, client: redis.Redis, name: str, token: str, ttl_seconds: float = 0, fence: int = 0) -> OverlapLock:
        """A handle on a lock taken elsewhere (its token, and maybe fence, travelled in a message)."""
        return cls(client, name, ttl_seconds, token, fence)

    def acquire(self, execution: str = "", *, worker_bound: bool = True) -> bool:
        """Take the lock with a fresh token; False (and nothing changed) when another execution holds it.

        ``execution`` (the job id) only labels the token, so the holder is recognisable: a redelivered copy of
        the same job is another execution and does not get in. ``worker_bound`` tokens name this worker, so a
        copy may take the lock over once that worker is lost; a lock handed on to other tasks (a fan-out's)
        must not be bound to the worker that took it.
        """
        token = worker_token(execution) if worker_bound else f"{execution}:{uuid.uuid4().hex}"
        ttl_ms = int(self.ttl_seconds * 1000)
        fence = int(self.client.eval(ACQUIRE_FENCED, 2, self.key, self.fence_key, token, ttl_ms))
        if not fence:
            fence = take_over_from_lost_worker(self.client, self._lock, token, self.fence_key)
        if not fence:
            return False
        self._lock.local.token = token.encode()
        self.token, self.fence = token, fence
        return True

    def renew(self) -> bool:
        """Reset the TTL if the lock is still ours (owner-checked); False when it was lost."""
        return self._lock.renew()

    @contextmanager
    def renewing(self) -> Iterator[OverlapLock]:
        """Keep the lock renewed (``Renewer``, every TTL/3) while the block runs."""
        self._renewer = Renewer(self._lock).start()
        try:
            yield self
        finally:
            self._renewer.stop()

    def check(self) -> None:
        """Raise ``LockLost`` once this execution no longer holds the lock: call it before acting again.

        Only Valkey's answer "another token" (here or the renewer's) counts as lost. A holder that cannot reach
        Valkey cannot tell and goes on: the fence the protected store checks refuses it if another run took
        the lock meanwhile."""
        lost = self._renewer is not None and self._renewer.lost.is_set()
        if not lost:
            try:
                lost = self._lock.holder() != self.token
            except redis.RedisError as exc:
                log.warning("cannot check lock %s (Valkey away), going on under its fence: %s", self.name, exc)
        if lost:
            raise LockLost(f"lock {self.name!r} is no longer held by {self.token!r} (expired or taken over)")

    def release(self) -> bool:
        """Free the lock if we still hold it; False when it had expired or changed hands."""
        if self._renewer is not None:
            self._renewer.stop()
        released = self._lock.try_release()
        if not released and self.token:
            log.warning("lock %s was no longer ours at release (expired after %ss?)", self.name, self.ttl_seconds)
        return released

    def skip_reason(self) -> str:
        remaining = self._lock.seconds_left()
        holder = self._lock.holder()
        left = f"; expires in {remaining:.0f}s at the latest" if remaining is not None else ""
        return f"another run holds lock {self.name!r}{left}; held by {holder}"


def try_lock(
    client: redis.Redis, name: str, ttl_seconds: float, execution: str = "", *, worker_bound: bool = True
) -> tuple[OverlapLock | None, str]:
    """``(lock, "")`` when taken, else ``(None, reason)`` -- the reason is logged, the caller skips."""
    lock = OverlapLock(client, name, ttl_seconds)
    if lock.acquire(execution, worker_bound=worker_bound):
        return lock, ""
    reason = lock.skip_reason()
    log.info("skipping: %s", reason)
    return None, reason
