"""Task contracts: wire name -> queue and argument model, for every task of seed 000.

The API and Beat send tasks by these names and validate arguments against the
models before anything reaches the broker; workers implement contracts with
``taskfleet_core.tasks.fleet_task.implements``. Names are explicit and never derived from
module paths (seed 003), so moving code never changes what is on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from taskfleet_core.tasks.queues import QUEUES


class Args(BaseModel):
    """Base of every argument model: unknown fields are errors, not silently ignored; strict types (no bool for
    an int, no "10" for a number), no NaN or Infinity."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _integral(cls, data: Any) -> Any:
        return integral_numbers(cls, data)


#: Largest request body the API accepts by default (``API_MAX_BODY_BYTES``); the text fields of a mail are
#: bounded so that a mail at every limit still fits (tests/unit/test_contracts.py checks it).
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: A header field value: no NUL, CR or LF (a CR/LF would start a new header: ``Bcc:`` injection).
HEADER_TEXT = r"^[^\x00\r\n]*$"


def _email_address(value: str) -> str:
    """RFC 5321/6531 address: internationalised (IDN, UTF-8 local part) allowed, sent with SMTPUTF8; reserved
    test domains (``.test``) allowed."""
    try:
        checked = email_validator.validate_email(value, check_deliverability=False, test_environment=True)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return checked.normalized


def _wants_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _wants_int(args[0])
    if origin in (Union, UnionType):
        return any(_wants_int(a) for a in args if a is not type(None))
    return False


def _integral(value: Any, annotation: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and _wants_int(annotation):
        return int(value)
    if isinstance(value, list):
        for candidate in (annotation, *get_args(annotation)):  # list[int], list[int] | None
            if get_origin(candidate) is list:
                return [_integral(item, get_args(candidate)[0]) for item in value]
    return value


def integral_numbers(model: type[BaseModel], data: Any) -> Any:
    """JSON has one number type: ``5.0`` is the integer 5 to JSON Schema, so an integer field takes it (as 5);
    ``5.5``, ``true`` and ``"5"`` stay errors under strict validation. For a model's ``mode="before"`` validator."""
    if not isinstance(data, dict):
        return data
    fields = model.model_fields
    return {k: _integral(v, fields[k].annotation) if k in fields else v for k, v in data.items()}


EmailAddress = Annotated[
    str,
    AfterValidator(_email_address),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]


class NoArgs(Args):
    pass


GrantSource = Literal["cordis", "eu_portal", "iati", "gcf", "world_bank"]


class SendEmailArgs(Args):
    to: list[EmailAddress] = Field(min_length=1, max_length=50)
    subject: str = Field(min_length=1, max_length=998, pattern=HEADER_TEXT, description="no NUL, CR or LF")
    text: str = Field(min_length=1, max_length=24_000, pattern=r"^[^\x00]*$", description="plain-text body")
    html: str | None = Field(None, max_length=24_000, pattern=r"^[^\x00]*$", description="optional HTML alternative")
    reply_to: EmailAddress | None = None
    idempotency_key: str | None = Field(
        None, max_length=200, pattern=HEADER_TEXT, description="same key = same email, sent once"
    )


class DeadlineCheckArgs(Args):
    windows_days: list[Annotated[int, Field(ge=1, le=366)]] = Field(default=[14, 7, 1], min_length=1, max_length=10)


class CompanyMatchesArgs(Args):
    company_id: int = Field(ge=1)
    top_n: int = Field(50, ge=1, le=500)


class RefreshMatchesArgs(Args):
    active_within_days: int | None = Field(None, ge=1, le=365, description="None = every active company")
    chunk_size: int = Field(50, ge=1, le=1000)


class MatchChunkArgs(Args):
    """One chunk of a ``refresh_all_matches`` fan-out: the grant matrix is built once for all of them."""

    company_ids: list[int] = Field(min_length=1, max_length=1000)
    top_n: int = Field(50, ge=1, le=500)
    #: the fan-out's overlap lock and its token: the chunk renews it while it works and writes nothing once
    #: it was lost (reliability/locks.py); absent for a chunk sent on its own
    lock: str | None = Field(None, min_length=1, max_length=200)
    token: str | None = Field(None, min_length=1, max_length=200)


class FinishRefreshArgs(Args):
    """The chord callback of a fan-out: releases the overlap lock the fan-out took."""

    lock: str = Field(min_length=1, max_length=200)
    token: str = Field(min_length=1, max_length=200)
    companies: int = Field(0, ge=0)


class SourceSyncArgs(Args):
    full: bool = Field(False, description="ignore the watermark and fetch everything")
    max_pages: int | None = Field(None, ge=1, le=10_000)


class SyncAllArgs(Args):
    full: bool = False
    sources: list[GrantSource] | None = Field(None, min_length=1, description="None = every enabled source")


class EmbeddingArgs(Args):
    batch_size: int = Field(64, ge=1, le=1024)
    limit: int | None = Field(None, ge=1)


class DeduplicateArgs(Args):
    similarity_threshold: float = Field(0.92, gt=0.5, le=1.0)


class MonthlyStatisticsArgs(Args):
    model_config = ConfigDict(
        # what _both_or_neither enforces, in the schema the API's spec serves
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {"year": {"type": "integer"}, "month": {"type": "integer"}},
                    "required": ["year", "month"],
                },
                {"properties": {"year": {"type": "null"}, "month": {"type": "null"}}},
            ]
        }
    )

    year: int | None = Field(None, ge=2000, le=2100, description="None = the previous month")
    month: int | None = Field(None, ge=1, le=12)

    @model_validator(mode="after")
    def _both_or_neither(self) -> MonthlyStatisticsArgs:
        if (self.year is None) != (self.month is None):
            raise ValueError("give both year and month, or neither")
        return self


class CanaryArgs(Args):
    """A synthetic job to prove a queue end to end: progress, retries and failures on demand."""

    steps: int = Field(1, ge=1, le=100)
    sleep_seconds: float = Field(0.0, ge=0, le=60)
    fail_attempts: int = Field(0, ge=0, le=10, description="fail transiently this many times, then succeed")
    fail_permanently: bool = False
    payload: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class TaskContract:
    name: str
    queue: str
    args_model: type[Args]
    description: str

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"contract {self.name}: unknown queue {self.queue!r}")

    def to_kwargs(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Positional arguments mapped onto the model's fields, in declared order."""
        merged = dict(kwargs or {})
        fields = list(self.args_model.model_fields)
        if len(args) > len(fields):
            raise _single_error(("args",), f"{self.name} takes at most {len(fields)} positional arguments")
        for index, (field, value) in enumerate(zip(fields, args, strict=False)):
            if field in merged:
                raise _single_error(("args", index), f"{field!r} given both positionally and by keyword")
            merged[field] = value
        return merged

    def validate(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> Args:
        """The parsed arguments; raises pydantic's ValidationError whose ``loc`` names the field."""
        return self.args_model.model_validate(self.to_kwargs(args, kwargs))

    def json_schema(self) -> dict[str, Any]:
        return self.args_model.model_json_schema()


def _single_error(loc: tuple[str | int, ...], message: str) -> ValidationError:
    detail = InitErrorDetails(type=PydanticCustomError("arguments", message), loc=loc, input=None)
    return ValidationError.from_exception_data("TaskArguments", [detail])


def _contracts(items: Iterable[TaskContract]) -> dict[str, TaskContract]:
    registry: dict[str, TaskContract] = {}
    for contract in items:
        if contract.name in registry:
            raise ValueError(f"duplicate contract {contract.name}")
        registry[contract.name] = contract
    return registry


C = TaskContract
CONTRACTS: dict[str, TaskContract] = _contracts(
    [
        # grant_pipeline_tasks (seed 000 "Grant Pipeline Tasks")
        C("pipeline.sync_cordis_grants", "sync", SourceSyncArgs, "Fetch from CORDIS"),
        C("pipeline.sync_eu_portal_grants", "sync", SourceSyncArgs, "Fetch from EU Funding & Tenders portal"),
        C("pipeline.sync_iati_grants", "sync", SourceSyncArgs, "Fetch from IATI Datastore"),
        C("pipeline.sync_gcf_projects", "sync", SourceSyncArgs, "Fetch from Green Climate Fund"),
        C("pipeline.sync_world_bank_projects", "sync", SourceSyncArgs, "Fetch from World Bank"),
        C("pipeline.sync_all_grants", "sync", SyncAllArgs, "Orchestrate all source syncs"),
        C("pipeline.generate_grant_embeddings_task", "sync", EmbeddingArgs, "Generate missing embeddings"),
        C("pipeline.deduplicate_grants_task", "sync", DeduplicateArgs, "Database-level deduplication"),
        # matching_tasks
        C("matching.refresh_all_matches", "matching", RefreshMatchesArgs, "Recalculate matches for many companies"),
        C("matching.calculate_company_matches", "matching", CompanyMatchesArgs, "Score every grant for one company"),
        C("matching.calculate_matches_chunk", "matching", MatchChunkArgs, "Score every grant for a chunk of companies"),
        C("matching.finish_refresh", "matching", FinishRefreshArgs, "End of a refresh fan-out: release its lock"),
        # email_tasks
        C("email.send_email", "email", SendEmailArgs, "Send one email (text + optional HTML) over SMTP"),
        C("email.check_deadline_notifications", "email", DeadlineCheckArgs, "Check for approaching deadlines"),
        # sync_tasks
        C("sync.sync_all_grant_sources", "sync", SyncAllArgs, "Legacy periodic sync of every source"),
        # scheduled_tasks (seed Beat sends these to the sync queue)
        C("scheduled.daily_grant_sync", "sync", NoArgs, "Incremental sync from all enabled sources"),
        C("scheduled.weekly_full_sync", "sync", NoArgs, "Full sync with deduplication"),
        C("scheduled.cleanup_expired_grants", "sync", NoArgs, "Mark expired grants as inactive"),
        # maintenance_tasks
        C("maintenance.reindex_search", "sync", NoArgs, "Rebuild the grant search index"),
        C("maintenance.cleanup_old_sessions", "default", NoArgs, "Remove expired sessions and tokens"),
        C("maintenance.health_check", "default", NoArgs, "Verify broker, database, SMTP and queues"),
        C("maintenance.vacuum_database", "default", NoArgs, "Run ANALYZE on the database"),
        C("maintenance.monthly_statistics", "default", MonthlyStatisticsArgs, "Aggregate monthly statistics"),
        C("maintenance.canary", "default", CanaryArgs, "Synthetic job proving a queue end to end"),
    ]
)


def contract_for(name: str) -> TaskContract:
    try:
        return CONTRACTS[name]
    except KeyError:
        raise KeyError(f"no task contract named {name!r}") from None


def contracts_of_queue(queue: str) -> list[TaskContract]:
    return [c for c in CONTRACTS.values() if c.queue == queue]
