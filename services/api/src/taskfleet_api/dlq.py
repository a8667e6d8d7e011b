"""``/api/v1/dlq``: look at dead-lettered jobs, replay them with a new id, or purge them.

A replay is a new job (new id, fresh retry budget) carrying a link to the job it replays, in
its job record and in a message header, so a job dead-lettered again names its predecessor.
A replayed entry leaves the DLQ; entries without a contract (unknown task names, raw
malformed bodies) cannot be replayed, only inspected and purged.

Replay and purge claim their entry in one Valkey script (reliability/dlq.py): of concurrent
requests exactly one acts. The new job's id is derived from the entry, so a retried or
concurrent replay gets the same job back (200, ``repeated: true``) instead of a second one; a
replay of a purged entry, or while the original job still has a delivery in flight or has
succeeded since, is refused with 409 and the reason.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel
from taskfleet_core.broker.client import client
from taskfleet_core.reliability import dlq
from taskfleet_core.settings import load

from taskfleet_api import joblog
from taskfleet_api.auth import require_admin_token
from taskfleet_api.bodies import GuardedRoute
from taskfleet_api.producer import JOB_RECORD_TTL, celery_app
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
    replayed_at: str
    #: True when an earlier or concurrent request had already replayed the entry: the same job, nothing sent again.
    repeated: bool = False


class ReplayReport(BaseModel):
    replayed: list[Replayed]
    skipped: list[str]
    #: Entries not replayed by this request, with the reason: settled by another request meanwhile, the
    #: original job still in flight or succeeded since.
    refused: dict[str, str] = {}


class PurgeReport(BaseModel):
    purged: int


def _store() -> dlq.DeadLetterQueue:
    return dlq.DeadLetterQueue(client())


def _summary(entry: dlq.DeadLetter) -> DeadLetterSummary:
    return DeadLetterSummary(**_fields(entry, DeadLetterSummary))


def _fields(entry: dlq.DeadLetter, model: type[BaseModel]) -> dict[str, Any]:
    data = {name: getattr(entry, name) for name in model.model_fields if name != "replayable"}
    return data | {"replayable": entry.replayable}


def _replay(store: dlq.DeadLetterQueue, entry_id: str) -> dlq.Outcome:
    outcome = store.replay(entry_id, celery_app(), record_ttl=JOB_RECORD_TTL)
    if outcome.status == dlq.REPLAYED and outcome.settled and outcome.settled.new_job_id:
        joblog.add(outcome.settled.new_job_id, load(ApiSettings))  # the listing; the job record is the script's
    return outcome


def _replayed(outcome: dlq.Outcome) -> Replayed:
    settled = outcome.settled
    assert settled is not None and settled.new_job_id is not None
    return Replayed(
        dead_letter_id=outcome.entry_id,
        old_job_id=settled.job_id,
        new_job_id=settled.new_job_id,
        status_url=f"/api/v1/jobs/{settled.new_job_id}",
        replayed_at=settled.at,
        repeated=outcome.status == dlq.ALREADY_REPLAYED,
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
    """Replay one entry; a retried or concurrent request gets the same job back (``repeated: true``)."""
    outcome = _replay(_store(), entry_id)
    if outcome.status in (dlq.REPLAYED, dlq.ALREADY_REPLAYED):
        return _replayed(outcome)
    if outcome.status == dlq.MISSING:
        raise HTTPException(status.HTTP_404_NOT_FOUND, outcome.detail)
    raise HTTPException(status.HTTP_409_CONFLICT, outcome.detail)


@router.post("/replay", response_model=ReplayReport)
def replay_matching(
    queue: QueueName | None = None,
    task: str | None = Query(None, max_length=200),
    reason: Reason | None = None,
    limit: int = Query(MAX_BULK, ge=1, le=MAX_BULK),
) -> ReplayReport:
    """Replay every matching entry (up to ``limit``); unreplayable ones are listed as skipped, entries another
    request settled meanwhile or whose original job is still in flight as refused."""
    store = _store()
    report = ReplayReport(replayed=[], skipped=[], refused={})
    for entry in list(store.iter(queue, task, reason))[:limit]:
        if not entry.replayable:
            report.skipped.append(entry.id)
            continue
        outcome = _replay(store, entry.id)
        if outcome.status == dlq.REPLAYED:
            report.replayed.append(_replayed(outcome))
        else:
            report.refused[entry.id] = outcome.detail
    return report


@router.delete("/{entry_id}", response_model=PurgeReport, responses={**NOT_FOUND, **CONFLICT})
def purge_dead_letter(entry_id: str) -> PurgeReport:
    """Purge one entry: ``purged`` is 1 if this request removed it, 0 if an earlier one had."""
    outcome = _store().purge_one(entry_id)
    if outcome.status == dlq.MISSING:
        raise HTTPException(status.HTTP_404_NOT_FOUND, outcome.detail)
    if outcome.status == dlq.ALREADY_REPLAYED:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{outcome.detail}: it is no longer in the DLQ")
    return PurgeReport(purged=int(outcome.status == dlq.PURGED))


@router.delete("", response_model=PurgeReport)
def purge_matching(
    queue: QueueName | None = None,
    task: str | None = Query(None, max_length=200),
    reason: Reason | None = None,
) -> PurgeReport:
    """Purge every matching entry; counts only the entries this request removed."""
    return PurgeReport(purged=_store().purge(queue, task, reason))
