"""The fleet-wide limiter in a real Valkey: never more than N grants in any window, shared by all callers."""

import time
import uuid

import redis
from taskfleet_core.reliability.ratelimit import FleetRateLimiter
from taskfleet_core.tasks.queues import RateLimit


def test_sliding_window_grants_at_most_the_limit(redis_client: redis.Redis) -> None:
    name = f"test-{uuid.uuid4().hex}"
    # two limiter objects = two workers sharing one limit
    a, b = (FleetRateLimiter(redis_client, name, RateLimit(3, 1)) for _ in range(2))
    grants = [limiter.acquire() for limiter in (a, b, a)]
    assert grants == [0.0, 0.0, 0.0]
    wait = b.acquire()
    assert 0 < wait <= 1.0
    time.sleep(wait + 0.05)
    assert a.acquire() == 0.0
