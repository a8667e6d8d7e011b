"""One synchronous Valkey client per process (redis-py's pool resets itself after fork)."""

from __future__ import annotations

import functools

import redis

from taskfleet_core.settings import BrokerSettings, load, on_reload


@functools.cache
def client() -> redis.Redis:
    return redis.Redis.from_url(load(BrokerSettings).redis_url, decode_responses=True, health_check_interval=30)


on_reload(client.cache_clear)  # a client of the old REDIS_URL must not outlive a settings reload
