"""The API's Celery producer and its job records in Valkey.

A job record (task, queue, submitted_at) is written at submission so that
``GET /jobs/{id}`` can tell an unknown id (404) from a job still waiting (PENDING).
A revocation marker lets every worker -- including one started after the revoke
broadcast -- skip a revoked job.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, cast

from celery import Celery
from opentelemetry import trace
from taskfleet_core.broker.client import client
from taskfleet_core.broker.keys import JOB_KEY, REVOKED_KEY
from taskfleet_core.tasks.app import RESULT_EXPIRES, create_app
from taskfleet_core.tasks.queues import visibility_timeout

#: How long a job record outlives its scheduled start: the result's TTL plus a day to look it up.
JOB_RECORD_TTL = RESULT_EXPIRES + 24 * 3600


@functools.cache
def celery_app() -> Celery:
    return create_app("taskfleet-api")


def record_job(job_id: str, task: str, queue: str, delay_seconds: float) -> dict[str, str]:
    record = {"task": task, "queue": queue, "submitted_at": datetime.now(UTC).isoformat()}
    context = trace.get_current_span().get_span_context()
    if context.is_valid:  # the submitting request's trace, which the job's spans continue: the console links it
        record["trace_id"] = format(context.trace_id, "032x")
    key = JOB_KEY.format(job_id=job_id)
    pipe = client().pipeline()
    fields: dict[Any, Any] = dict(record)  # redis-py types a mapping's keys invariantly
    pipe.hset(key, mapping=fields)
    pipe.expire(key, int(JOB_RECORD_TTL + delay_seconds))
    pipe.execute()
    return record


def job_record(job_id: str) -> dict[str, Any] | None:
    record = cast(dict[str, Any], client().hgetall(JOB_KEY.format(job_id=job_id)))  # decode_responses=True
    return record or None


def mark_revoked(job_id: str) -> None:
    client().set(REVOKED_KEY.format(job_id=job_id), "1", ex=JOB_RECORD_TTL + visibility_timeout())
