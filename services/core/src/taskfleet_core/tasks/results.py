"""The fleet's result backend: Celery's Redis backend, storing a state in one round trip instead of two.

Celery reads the current state before every store (a GET) so that a late duplicate never overwrites SUCCESS
(celery#6403-style races of lost workers), then writes it (SET + PUBLISH). Here both are one script with the
same rule, and the STARTED store also checks the job's revocation marker (``FleetTask.before_start``): per task,
a fleet worker makes two result round trips (start, end) where Celery with ``task_track_started`` and the
revocation check made five.

``create_app`` selects it with ``result_backend = "taskfleet_core.tasks.results:FleetResultBackend+redis://..."``;
readers (``AsyncResult``, the API) are Celery's, unchanged. Values, keys, expiries and the PUBLISH that wakes a
waiting ``result.get()`` are Celery's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import redis
from celery import states
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

#: KEYS: result key, [revocation marker]. ARGV: encoded meta, expiry in seconds (0: none), store (1/0).
#: Returns 1 when the revocation marker exists (nothing stored), else 0.
STORE_LUA = """
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if ARGV[3] ~= '1' then return 0 end
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 0
"""


@functools.cache
def _script(client: redis.Redis) -> Any:
    return client.register_script(STORE_LUA)


class FleetResultBackend(RedisBackend):
    """``RedisBackend`` whose stores are one script (read-check-write), with Celery's retries on a lost broker."""

    # Attributes of Celery's backends that celery-types leaves out.
    expires: int | None
    failure_expires: int | None
    _get_result_meta: Callable[..., dict[str, Any]]

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """No result subscription at publish time: the API, Beat and relays publish jobs they never wait on, and
        each subscription cost a SUBSCRIBE and a pending-result entry kept until the ``AsyncResult`` was collected.
        ``AsyncResult.get()`` still works: waiting subscribes, then reads the stored state (Celery's
        ``ResultConsumer.on_wait_for_pending``), so a result stored before the wait is not missed."""

    def _store(self, task_id: str, meta: dict[str, Any], state: str, revoked_key: str | None, store: bool) -> bool:
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError("value too large for Redis backend", state=state, task_id=task_id)
        expires = (self.failure_expires if state == states.FAILURE else None) or self.expires
        keys = [self.get_key_for_task(task_id), *([revoked_key] if revoked_key else [])]
        argv = [value, int(expires or 0), 1 if store else 0]
        script = _script(self.client)
        return bool(self.ensure(lambda: script(keys=keys, args=argv), ()))

    def _store_result(
        self, task_id: str, result: Any, state: str, traceback: Any = None, request: Any = None, **kwargs: Any
    ) -> Any:
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        self._store(task_id, meta, state, None, True)
        return result

    def start(self, task_id: str, request: Any, info: dict[str, Any], revoked_key: str, store: bool) -> bool:
        """Store STARTED unless ``revoked_key`` exists; True if it does (the job was revoked)."""
        meta = self._get_result_meta(result=info, state=states.STARTED, traceback=None, request=request)
        return self._store(task_id, meta, states.STARTED, revoked_key, store)
