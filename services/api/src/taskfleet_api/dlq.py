"""``/api/v1/dlq``: look at dead-lettered jobs, replay them with a new id, or purge them.

A replay is a new job (new id, fresh retry budget) carrying a link to the job it replays, in
its job record and in a message header, so a job dead-lettered again names its predecessor.
A replayed entry leaves the DLQ; entries without a contract (unknown task names, raw
malformed bodies) cannot be replayed, only inspected and purged.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel
from taskfleet_core.broker.client import client
from taskfleet_core.broker.keys import JOB_KEY
from taskfleet_core.reliability import dlq
from taskfleet_core.settings import load
from taskfleet_core.tasks.contracts import CONTRACTS

from taskfleet_api import joblog
from taskfleet_api.auth import require_admin_token
from taskfleet_api.bodies import GuardedRoute
from taskfleet_api.producer import celery_app, record_job
from taskfleet_api.responses import CONFLICT, FORBIDDEN, NOT_FOUND, PROTECTED
from taskfleet_api.settings import ApiSettings

router = APIRouter(
    prefix="/api/v1/dlq",
    tags=["dead-letter queue"],
    route_class=GuardedRoute,
    dependencies=[Depends(require_admin_token)],  # payloads, recipients, tracebacks: admin only
    responses={**PROTECTED, **FORBIDDEN},
)

#: The query parameters' allowed values, spelled out so the type checker and the OpenAPI spec both see them;
#: tests/unit/test_queues.py checks they equal the queue registry and the DLQ's reasons.
QueueName = Literal["default", "matching", "email", "sync"]
Reason = Literal[
    "retries_exhausted", "permanent_failure", "time_limit", "unknown_task", "malformed", "redelivery_limit"
]

#: Replaying or purging "everything matching" stops after this many entries per request.
MAX_BULK = 1000


class DeadLetterSummary(BaseModel):
    id: str
    queue: str
    reason: str
    task: str | None
    job_id: str | None
    exception_type: str | None
    exception_message: str | None
    retries: int
    first_seen_at: str
    dead_lettered_at: str
    times_dead_lettered: int
    replay_of: str | None
    replayable: bool


class DeadLetterDetail(DeadLetterSummary):
    args: Any
    kwargs: Any
    raw_body: str | None
    headers: dict[str, Any]
    traceback: str | None


class DeadLetterPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[DeadLetterSummary]


class Replayed(BaseModel):
    dead_letter_id: str
    old_job_id: str | None
    new_job_id: str
    status_url: str


class ReplayReport(BaseModel):
    replayed: list[Replayed]
    skipped: list[str]


class PurgeReport(BaseModel):
    purged: int


def _store() -> dlq.DeadLetterQueue:
    return dlq.DeadLetterQueue(client())


def _summary(entry: dlq.DeadLetter) -> DeadLetterSummary:
    return DeadLetterSummary(**_fields(entry, DeadLetterSummary))


def _fields(entry: dlq.DeadLetter, model: type[BaseModel]) -> dict[str, Any]:
    data = {name: getattr(entry, name) for name in model.model_fields if name != "replayable"}
    return data | {"replayable": entry.replayable}


def _replay(store: dlq.DeadLetterQueue, entry: dlq.DeadLetter) -> Replayed:
    contract = CONTRACTS[entry.task]  # type: ignore[index]
    old = entry.job_id or entry.id
    result = celery_app().send_task(
        contract.name,
        args=entry.args if isinstance(entry.args, list) else None,
        kwargs=entry.kwargs if isinstance(entry.kwargs, dict) else {},
        headers={dlq.REPLAY_OF_HEADER: old},
    )
    record_job(result.id, contract.name, contract.queue, 0.0)
    joblog.add(result.id, load(ApiSettings))
    client().hset(JOB_KEY.format(job_id=result.id), "replay_of", old)
    store.remove(entry)
    return Replayed(
        dead_letter_id=entry.id, old_job_id=entry.job_id, new_job_id=result.id, status_url=f"/api/v1/jobs/{result.id}"
    )


def _get(store: dlq.DeadLetterQueue, entry_id: str) -> dlq.DeadLetter:
    entry = store.get(entry_id)
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {entry_id!r}")
    return entry


@router.get("", response_model=DeadLetterPage)
def list_dead_letters(
    queue: QueueName | None = None,
    task: str | None = Query(None, max_length=200),
    reason: Reason | None = None,
    offset: int = Query(0, ge=0, le=1_000_000),
    limit: int = Query(50, ge=1, le=500),
) -> DeadLetterPage:
    total, items = _store().page(queue, task, reason, offset, limit)
    return DeadLetterPage(total=total, offset=offset, limit=limit, items=[_summary(e) for e in items])


@router.get("/stats", response_model=dict[str, int])
def dead_letter_sizes() -> dict[str, int]:
    """Entries per queue: the same numbers as the queue exporter's ``taskfleet_dlq_length`` gauge."""
    return _store().sizes()


@router.get("/{entry_id}", response_model=DeadLetterDetail, responses=NOT_FOUND)
def get_dead_letter(entry_id: str) -> DeadLetterDetail:
    entry = _get(_store(), entry_id)
    return DeadLetterDetail(**_fields(entry, DeadLetterDetail))


@router.post("/{entry_id}/replay", response_model=Replayed, responses={**NOT_FOUND, **CONFLICT})
def replay_dead_letter(entry_id: str) -> Replayed:
    store = _store()
    entry = _get(store, entry_id)
    if not entry.replayable:
        raise HTTPException(status.HTTP_409_CONFLICT, f"dead letter {entry_id} ({entry.reason}) cannot be replayed")
    return _replay(store, entry)


@router.post("/replay", response_model=ReplayReport)
def replay_matching(
    queue: QueueName | None = None,
    task: str | None = Query(None, max_length=200),
    reason: Reason | None = None,
    limit: int = Query(MAX_BULK, ge=1, le=MAX_BULK),
) -> ReplayReport:
    """Replay every matching entry (up to ``limit``); unreplayable ones are listed as skipped."""
    store = _store()
    report = ReplayReport(replayed=[], skipped=[])
    for entry in list(store.iter(queue, task, reason))[:limit]:
        if entry.replayable:
            report.replayed.append(_replay(store, entry))
        else:
            report.skipped.append(entry.id)
    return report


@router.delete("/{entry_id}", response_model=PurgeReport, responses=NOT_FOUND)
def purge_dead_letter(entry_id: str) -> PurgeReport:
    store = _store()
    return PurgeReport(purged=int(store.remove(_get(store, entry_id))))


@router.delete("", response_model=PurgeReport)
def purge_matching(
    queue: QueueName | None = None,
    task: str | None = Query(None, max_length=200),
    reason: Reason | None = None,
) -> PurgeReport:
    return PurgeReport(purged=_store().purge(queue, task, reason))
