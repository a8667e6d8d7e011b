"""Do a side effect once per key, even when the task runs twice (acks_late, redelivery).

``once(key)`` returns the stored result when the effect already happened; after
the effect, ``remember(key, result)`` records it. Keys expire (default 7 days):
longer than any retry or redelivery window, short enough not to grow forever.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from taskfleet_core.constants import KEY_PREFIX

IDEMPOTENCY_KEY = KEY_PREFIX + "done:{scope}:{key}"
DEFAULT_TTL_SECONDS = 7 * 24 * 3600


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
