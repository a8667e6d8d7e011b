"""Request and response bodies of the job API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator
from taskfleet_core.tasks.contracts import CONTRACTS, integral_numbers

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: Any) -> Any:
    """Only an ISO 8601 / RFC 3339 date-time, as the spec's ``format: date-time`` says (pydantic alone would also
    take ``0.5`` as a Unix time)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an ISO 8601 date-time with a zone, e.g. 2026-01-01T00:00:00Z")
    return value


#: A date-time query parameter, with its zone (Z or +hh:mm).
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]


def _per_contract(schema: dict[str, Any]) -> None:
    """The spec says what ``submit_job`` enforces: ``kwargs`` follows the named task's contract (one ``oneOf``
    branch per contract, the schemas ``GET /api/v1/tasks`` serves; an unknown name is a 404), and countdown
    and eta are never both given."""
    schema["not"] = {
        "required": ["countdown", "eta"],
        "properties": {"countdown": {"type": "number"}, "eta": {"type": "string"}},
    }
    branches = []
    for contract in CONTRACTS.values():
        kwargs = contract.json_schema()
        branch: dict[str, Any] = {"properties": {"task": {"const": contract.name}, "kwargs": kwargs}}
        if kwargs.get("required"):
            branch["required"] = ["kwargs"]
        branches.append(branch)
    schema["oneOf"] = branches


class JobRequest(BaseModel):
    """Strict types: no bool or string where a number is expected; countdown and eta exclude each other."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_per_contract)

    task: str = Field(min_length=1, max_length=200, description="contract name, see GET /api/v1/tasks")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="the task's arguments by name, as its contract in GET /api/v1/tasks says"
    )
    countdown: Annotated[float, Strict()] | None = Field(
        None, ge=0, allow_inf_nan=False, description="seconds to wait before running; not together with eta"
    )
    eta: Timestamp | None = Field(None, description="run at (timezone-aware ISO 8601); not together with countdown")
    priority: Annotated[int, Strict()] | None = Field(None, ge=0, le=9, description="0 is the highest on Valkey")

    @model_validator(mode="before")
    @classmethod
    def _integral(cls, data: Any) -> Any:
        return integral_numbers(cls, data)

    @model_validator(mode="after")
    def _one_delay(self) -> JobRequest:
        if self.countdown is not None and self.eta is not None:
            raise ValueError("give countdown or eta, not both")
        if self.eta is not None and self.eta.tzinfo is None:
            raise ValueError("eta must carry a timezone, e.g. 2026-01-01T02:00:00Z")
        return self


class JobAccepted(BaseModel):
    id: str
    task: str
    queue: str
    state: str = "PENDING"
    status_url: str


class JobError(BaseModel):
    type: str
    message: str


class JobStatus(BaseModel):
    id: str
    task: str
    queue: str
    state: str
    submitted_at: str
    progress: dict[str, Any] | None = None
    result: Any = None
    error: JobError | None = None
    retries: int | None = None
    date_done: str | None = None
    due_at: str | None = Field(None, description="ISO UTC time the job leaves the schedule, while it waits there")


class TaskInfo(BaseModel):
    name: str
    queue: str
    description: str
    args_schema: dict[str, Any]


class QueueInfo(BaseModel):
    name: str
    purpose: str
    rate_limit: str | None
    waiting: int
    waiting_by_priority: dict[str, int]
    in_flight: int
    scheduled: int = Field(description="delayed messages not due yet (countdown, ETA, retry backoff, deferral)")
