"""The API's Celery producer and its job records in Valkey.

A job record (task, queue, submitted_at) is written at submission so that
``GET /jobs/{id}`` can tell an unknown id (404) from a job still waiting (PENDING).
A revocation marker lets every worker -- including one started after the revoke
broadcast -- skip a revoked job.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from celery import Celery
from opentelemetry import trace
from taskfleet_core.broker.client import client
from taskfleet_core.broker.keys import JOB_KEY, REVOKED_KEY
from taskfleet_core.broker.transport import alongside_publish
from taskfleet_core.tasks.app import RESULT_EXPIRES, create_app
from taskfleet_core.tasks.queues import visibility_timeout

#: How long a job record outlives its scheduled start: the result's TTL plus a day to look it up.
JOB_RECORD_TTL = RESULT_EXPIRES + 24 * 3600


@functools.cache
def celery_app() -> Celery:
    return create_app("taskfleet-api")


def record_commands(job_id: str, task: str, queue: str, delay_seconds: float) -> list[tuple[Any, ...]]:
    """The job record's writes (HSET + EXPIRE), as commands to send with the publish or on their own."""
    key = JOB_KEY.format(job_id=job_id)
    record = {"task": task, "queue": queue, "submitted_at": datetime.now(UTC).isoformat()}
    context = trace.get_current_span().get_span_context()
    if context.is_valid:  # the submitting request's trace, which the job's spans continue: the console links it
        record["trace_id"] = format(context.trace_id, "032x")
    return [
        ("HSET", key, *(part for field in record.items() for part in field)),
        ("EXPIRE", key, int(JOB_RECORD_TTL + delay_seconds)),
    ]


def send(commands: list[tuple[Any, ...]]) -> None:
    """Commands as one pipeline round trip (nothing if there are none)."""
    if commands:
        pipe: Any = client().pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        pipe.execute()


def record_job(job_id: str, task: str, queue: str, delay_seconds: float) -> None:
    send(record_commands(job_id, task, queue, delay_seconds))


def publish(
    task: str,
    queue: str,
    kwargs: dict[str, Any],
    *,
    job_id: str | None = None,
    countdown: float | None = None,
    eta: datetime | None = None,
    priority: int | None = None,
    delay_seconds: float = 0.0,
    also: list[tuple[Any, ...]] | None = None,
    producer: Any = None,
) -> str:
    """Publish a job with its record (and ``also``: e.g. the listing index) in the same round trip to Valkey.

    The job id is fixed before the publish (``job_id`` or a new UUID) so the record's writes can travel in the
    publish's pipeline (``broker.transport.alongside_publish``). Celery's per-job result subscription is not
    made (``FleetResultBackend.on_task_call``): the API never waits on a result.
    """
    job_id = job_id or str(uuid.uuid4())
    with alongside_publish(*record_commands(job_id, task, queue, delay_seconds), *(also or [])) as unsent:
        celery_app().send_task(
            task, kwargs=kwargs, task_id=job_id, countdown=countdown, eta=eta, priority=priority, producer=producer
        )
        send(unsent)
    return job_id


def job_record(job_id: str) -> dict[str, Any] | None:
    record = cast(dict[str, Any], client().hgetall(JOB_KEY.format(job_id=job_id)))  # decode_responses=True
    return record or None


def mark_revoked(job_id: str) -> None:
    client().set(REVOKED_KEY.format(job_id=job_id), "1", ex=JOB_RECORD_TTL + visibility_timeout())
