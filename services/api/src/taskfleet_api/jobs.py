"""``/api/v1/jobs``: submit by contract name, read state and progress, revoke."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from celery import states
from celery.result import AsyncResult
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from taskfleet_core.broker import schedule
from taskfleet_core.broker.client import client
from taskfleet_core.settings import load
from taskfleet_core.tasks.contracts import CONTRACTS

from taskfleet_api import joblog, outbox
from taskfleet_api.auth import require_admin, require_read
from taskfleet_api.bodies import GuardedRoute
from taskfleet_api.producer import celery_app, job_record, mark_revoked, publish
from taskfleet_api.responses import CONFLICT, FORBIDDEN, NOT_FOUND, PROTECTED
from taskfleet_api.schemas import JobAccepted, JobError, JobRequest, JobStatus, Timestamp
from taskfleet_api.settings import ApiSettings

router = APIRouter(
    prefix="/api/v1/jobs",
    tags=["jobs"],
    route_class=GuardedRoute,
    dependencies=[Depends(require_read)],
    responses=PROTECTED,
)

#: States whose meta is progress information rather than a result.
PROGRESS_STATES = {"PROGRESS", "DEFERRED", states.STARTED, states.RETRY}
#: States in which a job may be waiting in its queue's schedule (countdown/ETA, retry backoff, deferral).
SCHEDULABLE_STATES = {states.PENDING, states.RETRY, "DEFERRED"}


def readable(value: Any) -> Any:
    """A stored result or progress as strict JSON can carry it: a worker's NaN or Infinity becomes the string
    ``"NaN"``/``"Infinity"``, a lone surrogate its ``\\udXXX`` escape, instead of a 500 on every read."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8") if _has_surrogate(value) else value
    if isinstance(value, list | tuple):
        return [readable(v) for v in value]
    if isinstance(value, dict):
        return {readable(str(k)): readable(v) for k, v in value.items()}
    return value


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _contract_errors(exc: ValidationError) -> RequestValidationError:
    """The contract's errors, located in the request body so the field is named."""
    errors = []
    for err in exc.errors(include_url=False):
        errors.append({**err, "loc": ("body", "kwargs", *err["loc"])})
    return RequestValidationError(errors)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    dependencies=[Depends(require_admin)],
    responses={**FORBIDDEN, **NOT_FOUND},
)
def submit_job(request: JobRequest) -> JobAccepted:
    contract = CONTRACTS.get(request.task)
    if contract is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task contract named {request.task!r}; see /api/v1/tasks")
    try:
        contract.validate(kwargs=request.kwargs)
    except ValidationError as exc:
        raise _contract_errors(exc) from None

    delay = request.countdown or 0.0
    if request.eta is not None:
        delay = max(0.0, (request.eta - datetime.now(UTC)).total_seconds())
    settings = load(ApiSettings)
    max_delay = settings.api_max_delay_seconds
    if delay > max_delay:
        # Delayed work waits in Valkey's schedule, not in a worker, so the visibility timeout no longer
        # bounds it. This bound is a guard: a mistyped ETA must not park a job (and memory) for years, and
        # work that far ahead or recurring belongs to Beat's schedule.
        field = "countdown" if request.countdown is not None else "eta"
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", field),
                    "input": getattr(request, field),
                    "msg": f"delay must be at most API_MAX_DELAY_SECONDS ({max_delay} s); use Beat for later work",
                }
            ]
        )

    job_id = str(uuid.uuid4())
    publish(
        contract.name,
        contract.queue,
        request.kwargs,
        job_id=job_id,
        countdown=request.countdown,
        eta=request.eta,
        priority=request.priority,
        delay_seconds=delay,
        also=joblog.index_commands(job_id, settings),
    )
    return JobAccepted(id=job_id, task=contract.name, queue=contract.queue, status_url=f"{router.prefix}/{job_id}")


class JobPage(BaseModel):
    total: int = Field(description="jobs matching the filters among the indexed ones (API_JOB_INDEX_MAX newest)")
    offset: int
    limit: int
    items: list[joblog.JobSummary]


JobState = Literal["PENDING", "STARTED", "PROGRESS", "DEFERRED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"]
QueueName = Literal["default", "matching", "email", "sync"]


@router.get("", response_model=JobPage)
def list_jobs(
    state: JobState | None = None,
    task: str | None = Query(None, min_length=1, max_length=200),
    queue: QueueName | None = None,
    since: Timestamp | None = Query(None, description="submitted at or after (ISO 8601 with a zone)"),
    offset: int = Query(0, ge=0, le=1_000_000),
    limit: int = Query(50, ge=1, le=500),
) -> JobPage:
    """Jobs submitted through the API (and DLQ replays), newest first, from a bounded index (joblog)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    total, entries = joblog.listing(
        load(ApiSettings), state=state, task=task, queue=queue, since=since, offset=offset, limit=limit
    )
    return JobPage(
        total=total,
        offset=offset,
        limit=limit,
        items=entries,
    )


def _known(job_id: str) -> dict[str, str]:
    record = job_record(job_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r} (unknown, or expired)")
    return record


@router.get("/{job_id}", response_model=JobStatus, responses=NOT_FOUND)
def get_job(job_id: str) -> JobStatus:
    if job_record(job_id) is None and (waiting := outbox.waiting_status(job_id)) is not None:
        return waiting  # committed to the outbox, not yet published: PENDING
    record = _known(job_id)
    result: AsyncResult[Any] = AsyncResult(job_id, app=celery_app())
    state, info = result.state, result.info
    status_ = JobStatus(
        id=job_id,
        task=record["task"],
        queue=record["queue"],
        state=state,
        submitted_at=record["submitted_at"],
        retries=result.retries,
    )
    if state == states.SUCCESS:
        status_.result = readable(info)
        status_.date_done = result.date_done.isoformat() if result.date_done else None
    elif state in states.PROPAGATE_STATES or isinstance(info, BaseException):
        status_.error = JobError(type=type(info).__name__, message=readable(str(info)))
        status_.date_done = result.date_done.isoformat() if result.date_done else None
    elif state in PROGRESS_STATES and isinstance(info, dict):
        status_.progress = readable(info)
    if state in SCHEDULABLE_STATES:
        due = schedule.due_at(client(), record["queue"], job_id)
        status_.due_at = due.isoformat() if due else None
    return status_


@router.post(
    "/{job_id}/revoke",
    response_model=JobStatus,
    dependencies=[Depends(require_admin)],
    responses={**FORBIDDEN, **NOT_FOUND, **CONFLICT},
)
def revoke_job(job_id: str, terminate: bool = Query(False, description="also stop it if already running")) -> JobStatus:
    """A revoked job stays readable (state ``REVOKED``), so revoking is an action on it, not a DELETE."""
    record = _known(job_id)
    result: AsyncResult[Any] = AsyncResult(job_id, app=celery_app())
    if result.state in states.READY_STATES:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} already finished ({result.state})")
    mark_revoked(job_id)
    unscheduled = schedule.cancel(client(), record["queue"], job_id)  # waiting in the schedule: it never runs
    celery_app().control.revoke(job_id, terminate=terminate, signal="SIGTERM")
    if unscheduled or result.state in (states.PENDING, "DEFERRED"):
        # not started anywhere (or waiting for a retry): revoked now, whichever worker would have received it
        celery_app().backend.mark_as_revoked(job_id, reason="revoked via API")
    return get_job(job_id)
