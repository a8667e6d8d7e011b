"""Fleet-wide rate limits in Valkey (DESIGN.md invariant 8).

Celery's ``rate_limit`` is per worker and multiplies with every replica KEDA adds;
this limiter is one sliding-window log per queue in Valkey, checked atomically by
a Lua script, so "30/minute" holds for the whole fleet in any 60-second window.
"""

from __future__ import annotations

import uuid

import redis

from taskfleet_core.broker.keys import RATE_KEY
from taskfleet_core.tasks.queues import RateLimit

# Returns 0 when a slot was taken, else the milliseconds until the oldest entry leaves the window.
_SLIDING_WINDOW = """
local key, limit, window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class FleetRateLimiter:
    def __init__(self, client: redis.Redis, name: str, limit: RateLimit) -> None:
        self.key = RATE_KEY.format(name=name)
        self.limit = limit
        self._script = client.register_script(_SLIDING_WINDOW)

    def acquire(self) -> float:
        """Take a slot: 0.0 if granted, else the seconds to wait before asking again."""
        wait_ms = self._script(
            keys=[self.key], args=[self.limit.count, self.limit.per_seconds * 1000, uuid.uuid4().hex]
        )
        return int(wait_ms) / 1000.0
