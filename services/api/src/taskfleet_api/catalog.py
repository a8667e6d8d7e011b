"""``/api/v1/tasks`` and ``/api/v1/queues``: what can be submitted, and what is waiting where."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from taskfleet_core.broker.client import client
from taskfleet_core.broker.depths import queue_depths
from taskfleet_core.tasks.contracts import CONTRACTS
from taskfleet_core.tasks.queues import QUEUES

from taskfleet_api.auth import require_read
from taskfleet_api.bodies import GuardedRoute
from taskfleet_api.responses import PROTECTED
from taskfleet_api.schemas import QueueInfo, TaskInfo

router = APIRouter(
    prefix="/api/v1",
    tags=["catalog"],
    route_class=GuardedRoute,
    dependencies=[Depends(require_read)],
    responses=PROTECTED,
)


@router.get("/tasks", response_model=list[TaskInfo])
def list_tasks() -> list[TaskInfo]:
    return [
        TaskInfo(name=c.name, queue=c.queue, description=c.description, args_schema=c.json_schema())
        for c in CONTRACTS.values()
    ]


@router.get("/queues", response_model=list[QueueInfo])
def list_queues() -> list[QueueInfo]:
    depths = queue_depths(client())
    return [
        QueueInfo(
            name=spec.name,
            purpose=spec.purpose,
            rate_limit=str(spec.rate_limit) if spec.rate_limit else None,
            **depths[spec.name],
        )
        for spec in QUEUES.values()
    ]
