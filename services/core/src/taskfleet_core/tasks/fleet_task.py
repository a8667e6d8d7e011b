"""How a worker implements a contract: ``@implements("email.send_email")``.

The decorator gives the task its wire name, queue, time limits and the queue's
retry policy (exponential backoff, full jitter, capped), and validates the
message's arguments against the contract before the body runs -- a malformed
message fails permanently with the field named, it never crashes the worker.
"""

from __future__ import annotations

import functools
import logging
import os
import random
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from celery import Task, shared_task, states
from celery.exceptions import Ignore
from pydantic import ValidationError

from taskfleet_core.broker.client import client
from taskfleet_core.broker.keys import REVOKED_KEY
from taskfleet_core.reliability.message_guard import record_task_failure, redelivery_limit_reached
from taskfleet_core.reliability.ratelimit import FleetRateLimiter
from taskfleet_core.settings import BrokerSettings, load
from taskfleet_core.tasks.contracts import Args, TaskContract, contract_for
from taskfleet_core.tasks.errors import InvalidTaskArguments, PermanentError, TransientError
from taskfleet_core.tasks.queues import QUEUES, RateLimit
from taskfleet_core.tasks.results import FleetResultBackend

log = logging.getLogger(__name__)

A = TypeVar("A", bound=Args)

#: The state a running task reports with ``report_progress``; the API shows its meta.
PROGRESS = "PROGRESS"
#: Smallest delay before a retry runs (seconds); found by the chaos load test, see ``FleetTask.retry``.
MIN_RETRY_DELAY = 1.0
#: The state of a task put back because its queue's fleet-wide rate limit was reached.
DEFERRED = "DEFERRED"


class FleetTask(Task[Any, Any]):
    """Base of every fleet task: knows its contract."""

    abstract = True
    typing = False  # arguments are checked against the contract instead
    #: STARTED is stored by ``before_start`` together with the revocation check (``_start``), not by Celery.
    track_started = False
    contract: TaskContract

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Skip a revoked job; take a slot of the queue's fleet-wide rate limit or defer the job."""
        if self.request.is_eager:
            return
        if self._start(task_id):
            # revoked while this worker was not listening (started later, reconnecting)
            self.backend.mark_as_revoked(task_id, reason="revoked via API", request=self.request)
            log.info("%s[%s] skipped: revoked", self.name, task_id)
            raise Ignore()
        if redelivery_limit_reached(self, task_id):  # a poison pill that keeps killing its worker
            raise Ignore()
        self._take_rate_limit_slot(task_id)

    def _start(self, task_id: str) -> bool:
        """Store STARTED unless the job was revoked (revoked while this worker was not listening); True if revoked.

        With the fleet's result backend this is one script (tasks/results.py): Celery's own ``task_track_started``
        store (a GET, then SET + PUBLISH) and the revocation EXISTS were three round trips per task.
        """
        request = self.request
        store = not (self.ignore_result or request.ignore_result)
        revoked_key = REVOKED_KEY.format(job_id=task_id)
        info = {"pid": os.getpid(), "hostname": request.hostname}
        backend: Any = self.backend
        if isinstance(backend, FleetResultBackend):
            return backend.start(task_id, request, info, revoked_key, store)
        if store:  # another backend: Celery's store, then the check
            backend.store_result(task_id, info, states.STARTED, request=request)
        return bool(client().exists(revoked_key))

    def _take_rate_limit_slot(self, task_id: str) -> None:
        """Deferred, not retried: a throttled job keeps its retry budget and does not count as a failure."""
        limit = QUEUES[self.contract.queue].rate_limit
        if limit is None:
            return
        scale = load(BrokerSettings).rate_limit_time_scale  # < 1 only in compressed-time tests
        if scale != 1:
            limit = RateLimit(limit.count, max(1, round(limit.per_seconds * scale)))
        wait = FleetRateLimiter(client(), self.contract.queue, limit).acquire()
        if wait <= 0:
            return
        countdown = wait + random.uniform(0, limit.per_seconds / limit.count)  # spread the herd
        self.signature_from_request(countdown=countdown, retries=self.request.retries).apply_async()
        self.update_state(
            state=DEFERRED,
            meta={
                "reason": f"rate limit {limit} of queue {self.contract.queue}",
                "retry_in_seconds": round(countdown, 3),
            },
        )
        log.info(
            "%s[%s] deferred %.1fs: queue %s at its fleet-wide limit %s",
            self.name,
            task_id,
            countdown,
            self.contract.queue,
            limit,
        )
        raise Ignore()

    def retry(self, *args: Any, **options: Any) -> Any:
        """At least ``MIN_RETRY_DELAY`` s: full jitter can draw 0, and a retry run that finishes before this
        run has written RETRY leaves the result stuck at RETRY (Celery's state check is not atomic)."""
        countdown = options.get("countdown")
        if options.get("eta") is None and countdown is not None and countdown < MIN_RETRY_DELAY:
            options["countdown"] = MIN_RETRY_DELAY
        return super().retry(*args, **options)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Failed for good (retries exhausted, permanent error, time limit): into the queue's DLQ."""
        if not self.request.is_eager:
            record_task_failure(self, exc, task_id, args, kwargs, einfo)

    def report_progress(self, done: int, total: int, message: str = "", **extra: Any) -> None:
        """Publish progress (``update_state``); a no-op outside a worker.

        Best effort: progress is informational, so a result backend that is away (a Valkey restart) skips this
        report instead of failing the job; the final result is stored with the backend's own retries.
        """
        if self.request.id is None or self.request.called_directly:
            return
        meta = {"done": done, "total": total, "message": message, **extra}
        try:
            self.update_state(state=PROGRESS, meta=meta)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            log.warning("progress of %s not stored (result backend away): %s", self.request.id, exc)


def format_validation_error(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<args>'}: {e['msg']}" for e in exc.errors())


def task_options(contract: TaskContract) -> dict[str, Any]:
    spec = QUEUES[contract.queue]
    return {
        "name": contract.name,
        "bind": True,
        "base": FleetTask,
        "queue": contract.queue,
        "time_limit": spec.time_limit,
        "soft_time_limit": spec.soft_time_limit,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "autoretry_for": (TransientError,),
        "dont_autoretry_for": (PermanentError,),
        **spec.retry.celery_options(),
    }


def implements(name: str, **overrides: Any) -> Callable[[Callable[[FleetTask, A], Any]], FleetTask]:
    """Register ``fn(task, args_model)`` as the implementation of contract ``name``."""
    contract = contract_for(name)

    def decorator(fn: Callable[[FleetTask, A], Any]) -> FleetTask:
        @functools.wraps(fn)
        def run(self: FleetTask, *args: Any, **kwargs: Any) -> Any:
            try:
                params = contract.validate(args, kwargs)
            except ValidationError as exc:
                raise InvalidTaskArguments(f"{contract.name}: {format_validation_error(exc)}") from None
            return fn(self, params)  # type: ignore[arg-type]

        options = task_options(contract) | {"contract": contract} | overrides
        task: FleetTask = shared_task(**options)(run)
        return task

    return decorator
