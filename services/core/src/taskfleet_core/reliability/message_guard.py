"""Messages a worker cannot run go to the dead-letter queue, never only to a log line.

Celery's consumer has four exits for a message it cannot turn into a task: an unknown task
name (``on_unknown_task``: logged, rejected, result marked FAILURE), a body without task
headers (``on_unknown_message``), an invalid message or disallowed content type such as
pickle (``on_invalid_task``), and a body that does not decode (``on_decode_error``: logged and
acked). Each drops the message. ``GuardedConsumer`` (``worker_consumer`` setting) dead-letters
it first, then lets Celery reject it as before, so the worker keeps consuming.

Failures of known tasks (exhausted retries, permanent errors, time limits) reach the DLQ from
``FleetTask.on_failure`` through ``record_task_failure``. A message that keeps coming back
because it kills its worker (OOM, segfault: ``reject_on_worker_lost`` requeues it each time)
is stopped by ``redelivery_limit_reached`` after ``MAX_REDELIVERIES`` and dead-lettered too.
"""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.worker.consumer import Consumer

from taskfleet_core.broker.keys import REDELIVERY_KEY
from taskfleet_core.reliability import dlq
from taskfleet_core.tasks.errors import TransientError

log = logging.getLogger("taskfleet.dlq")

#: Deliveries of one message after its first before it counts as a poison pill (kills, drains, restarts).
MAX_REDELIVERIES = 10
REDELIVERY_TTL_SECONDS = 7 * 24 * 3600

#: Custom message headers show up as attributes of the task request (Celery copies them there).
REPLAY_ATTR = dlq.REPLAY_OF_HEADER


def _raw_body(message: Any) -> str:
    body = getattr(message, "body", None)
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = base64.b64encode(body).decode("ascii")
        return text[: dlq.RAW_BODY_MAX]
    return str(body)[: dlq.RAW_BODY_MAX]


def _decoded(message: Any) -> Any:
    try:
        return message.decode()
    except Exception:  # undecodable is exactly the case we are recording
        return None


def dead_letter_message(queue: str, message: Any, reason: str, exc: BaseException | None) -> dlq.DeadLetter | None:
    """Record a message the consumer is about to drop. Never raises: the consumer must go on."""
    try:
        headers = dict(getattr(message, "headers", None) or {})
        body = _decoded(message) if reason != dlq.MALFORMED else None
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if isinstance(body, (list, tuple)) and len(body) >= 2:  # protocol 2: (args, kwargs, embed)
            args, kwargs = list(body[0] or []), dict(body[1] or {})
        job_id = headers.get("id") if isinstance(headers.get("id"), str) else None
        entry = dlq.DeadLetter(
            id=job_id or uuid.uuid4().hex,
            queue=queue,
            reason=reason,
            task=headers.get("task") if isinstance(headers.get("task"), str) else None,
            job_id=job_id,
            args=dlq.jsonable(args),
            kwargs=dlq.jsonable(kwargs),
            raw_body=None if body is not None else _raw_body(message),
            headers=dlq.jsonable({k: v for k, v in headers.items() if k not in {"argsrepr", "kwargsrepr"}}),
            exception_type=type(exc).__name__ if exc is not None else None,
            exception_message=str(exc)[:2000] if exc is not None else "message has no task headers",
            traceback=dlq.summarise_traceback(exc),
            retries=int(headers.get("retries") or 0) if str(headers.get("retries") or 0).isdigit() else 0,
            replay_of=headers.get(dlq.REPLAY_OF_HEADER),
        )
        stored = dlq.dead_letter_queue().add(entry)
        log.error("dead-lettered %s message %s on queue %s (%s)", reason, stored.id, queue, entry.exception_type)
        return stored
    except Exception:
        log.exception("could not dead-letter a %s message on queue %s; it is rejected", reason, queue)
        return None


class GuardedConsumer(Consumer):
    """Celery's consumer, with every drop path dead-lettering the message first."""

    def _queue(self) -> str:
        return getattr(self.app.conf, "taskfleet_queue", None) or "default"

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        dead_letter_message(self._queue(), message, dlq.UNKNOWN_TASK, exc)
        super().on_unknown_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        dead_letter_message(self._queue(), message, dlq.MALFORMED, None)
        super().on_unknown_message(body, message)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        dead_letter_message(self._queue(), message, dlq.MALFORMED, exc)
        super().on_invalid_task(body, message, exc)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        dead_letter_message(self._queue(), message, dlq.MALFORMED, exc)
        super().on_decode_error(message, exc)


def failure_reason(exc: BaseException) -> str:
    """A task reaches ``on_failure`` with a TransientError only once its retries are spent."""
    if isinstance(exc, (TimeLimitExceeded, SoftTimeLimitExceeded)):
        return dlq.TIMEOUT
    if isinstance(exc, TransientError):
        return dlq.EXHAUSTED
    return dlq.PERMANENT  # PermanentError, or not declared retryable: retrying a bug would not fix it


def record_task_failure(task: Any, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
    """Dead-letter a known task that failed for good. Never raises (called from ``on_failure``)."""
    try:
        request = task.request
        same_job = getattr(request, "id", None) == task_id
        retries = int(getattr(request, "retries", 0) or 0) if same_job else 0
        headers = (getattr(request, "headers", None) or {}) if same_job else {}
        if same_job and getattr(request, REPLAY_ATTR, None):
            headers = {**headers, dlq.REPLAY_OF_HEADER: getattr(request, REPLAY_ATTR)}
        dlq.dead_letter_queue().add_failure(
            queue=task.contract.queue,
            task=task.name,
            job_id=task_id,
            args=args,
            kwargs=kwargs,
            exc=exc,
            reason=failure_reason(exc),
            retries=retries,
            traceback_text=getattr(einfo, "traceback", None),
            headers={k: v for k, v in headers.items() if k in {dlq.REPLAY_OF_HEADER, "origin", "eta"}},
        )
        log.error("dead-lettered %s[%s] after %d retries: %r", task.name, task_id, retries, exc)
    except Exception:
        log.exception("could not dead-letter %s[%s]", getattr(task, "name", "?"), task_id)


def redelivery_limit_reached(task: Any, task_id: str) -> bool:
    """Count redeliveries of this message (kombu flags restored ones); past the limit, dead-letter it."""
    request = task.request
    if not (request.delivery_info or {}).get("redelivered"):
        return False
    from taskfleet_core.broker.client import client

    key = REDELIVERY_KEY.format(job_id=task_id, retries=request.retries or 0)
    pipe = client().pipeline()
    pipe.incr(key)
    pipe.expire(key, REDELIVERY_TTL_SECONDS)
    count, _ = pipe.execute()
    if count <= MAX_REDELIVERIES:
        return False
    exc = RuntimeError(f"delivered {count + 1} times without finishing: the job kills its worker or never acks")
    dlq.dead_letter_queue().add_failure(
        queue=task.contract.queue,
        task=task.name,
        job_id=task_id,
        args=request.args,
        kwargs=request.kwargs,
        exc=exc,
        reason=dlq.REDELIVERY_LIMIT,
        retries=request.retries or 0,
    )
    log.error("dead-lettered %s[%s]: %s", task.name, task_id, exc)
    return True
