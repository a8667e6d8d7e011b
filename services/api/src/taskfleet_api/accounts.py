"""``/api/v1/companies`` and ``/api/v1/users``: just enough to create a company, then read its matches.

Writes that need work done go through the outbox (docs/outbox.md), in the write's own transaction: a new
company gets its first matching job (``matching.calculate_company_matches``), a new user who wants deadline
alerts a confirmation email (``email.send_email``); each job's id is in the response, and
``GET /api/v1/jobs/{id}`` answers for it at once (``PENDING`` while not yet published). Recalculating later is
``POST /api/v1/jobs``; this router reads what the matching worker stored. The engine is created on first use
(the API starts even while the database is down) and disposed of when the app shuts down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from taskfleet_core.settings import load
from taskfleet_core.tasks.contracts import EmailAddress, integral_numbers
from taskfleet_data.accounts import COMPANY_SIZES, Company, MatchResult, User, add_company
from taskfleet_data.db import migrated_engine
from taskfleet_data.models import Grant
from taskfleet_data.outbox import enqueue_in
from taskfleet_data.settings import DataSettings

from taskfleet_api.auth import require_admin, require_read
from taskfleet_api.bodies import GuardedRoute
from taskfleet_api.responses import CONFLICT, FORBIDDEN, NOT_FOUND, PROTECTED


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.accounts_engine = None
    try:
        yield
    finally:
        if app.state.accounts_engine is not None:
            await app.state.accounts_engine.dispose()
            app.state.accounts_engine = None


router = APIRouter(
    prefix="/api/v1",
    tags=["companies"],
    lifespan=lifespan,
    route_class=GuardedRoute,
    dependencies=[Depends(require_read)],
    responses=PROTECTED,
)

#: Database ids are 32-bit on every backend; a larger one is a 422, not a driver overflow.
MAX_ID = 2**31 - 1
CompanyId = Annotated[int, Path(ge=1, le=MAX_ID)]
WindowDays = Annotated[int, Field(ge=1, le=366)]


#: PostgreSQL text and JSONB cannot hold NUL characters: refused here (and said so in the spec), not there.
NO_NUL = r"^[^\x00]*$"


class CompanyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no 0 for a bool, no "1" for a number

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    country: str | None = Field(None, pattern=r"^[A-Za-z]{2}$", description="ISO 3166 alpha-2")
    sectors: list[Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=20
    )
    description: str = Field("", max_length=20_000, pattern=NO_NUL)
    size: Literal[COMPANY_SIZES] | None = None  # type: ignore[valid-type]
    active: bool = True

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class CompanyOut(BaseModel):
    id: int
    name: str
    country: str | None
    sectors: list[str]
    description: str
    size: str | None
    active: bool
    created_at: datetime
    matching_job_id: str | None = Field(
        None, description="on creation: the job computing the first matches (GET /api/v1/jobs/{id})"
    )


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    email: EmailAddress
    company_id: int = Field(ge=1, le=MAX_ID)
    name: str | None = Field(None, max_length=200, pattern=NO_NUL)
    notify_deadlines: bool = True
    alert_windows_days: list[WindowDays] | None = Field(
        None, min_length=1, max_length=10, description="default 14, 7, 1"
    )
    min_alert_score: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _integral(cls, data: Any) -> Any:
        return integral_numbers(cls, data)

    @field_validator("email")
    @classmethod
    def _length(cls, value: str) -> str:
        if len(value) > 254:  # RFC 5321 path limit; the column holds 320
            raise ValueError("at most 254 characters")
        return value


class UserOut(BaseModel):
    id: int
    email: str
    company_id: int
    name: str | None
    notify_deadlines: bool
    alert_windows_days: list[int] | None
    min_alert_score: float
    welcome_job_id: str | None = Field(
        None, description="on creation with notify_deadlines: the confirmation email's job (GET /api/v1/jobs/{id})"
    )


class MatchOut(BaseModel):
    rank: int
    grant_id: int
    title: str
    source: str
    score: float
    reasons: list[str]
    deadline: datetime | None
    url: str | None
    computed_at: datetime


class MatchesOut(BaseModel):
    company_id: int
    computed_at: datetime | None = Field(description="when the current results were calculated; null: never")
    matches: list[MatchOut]


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    state = request.app.state
    if getattr(state, "accounts_engine", None) is None:
        state.accounts_engine = await migrated_engine(load(DataSettings).database_url)
    async with async_sessionmaker(state.accounts_engine, expire_on_commit=False)() as db:
        yield db


def _company_out(c: Company, matching_job_id: str | None = None) -> CompanyOut:
    return CompanyOut(
        matching_job_id=matching_job_id,
        id=c.id,
        name=c.name,
        country=c.country,
        sectors=list(c.sectors or []),
        description=c.description,
        size=c.size,
        active=c.active,
        created_at=c.created_at,
    )


@router.post(
    "/companies",
    status_code=status.HTTP_201_CREATED,
    response_model=CompanyOut,
    dependencies=[Depends(require_admin)],
    responses=FORBIDDEN,
)
async def create_company(body: CompanyIn, db: AsyncSession = Depends(session)) -> CompanyOut:
    now = datetime.now(UTC)
    company, job_id = await add_company(db, **body.model_dump(), created_at=now, updated_at=now, last_active_at=now)
    await db.commit()  # the company and its matching job, or neither
    return _company_out(company, job_id)


@router.get("/companies/{company_id}", response_model=CompanyOut, responses=NOT_FOUND)
async def get_company(company_id: CompanyId, db: AsyncSession = Depends(session)) -> CompanyOut:
    company = await db.get(Company, company_id)
    if company is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no company {company_id}")
    return _company_out(company)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    dependencies=[Depends(require_admin)],
    responses={**FORBIDDEN, **NOT_FOUND, **CONFLICT},
)
async def create_user(body: UserIn, db: AsyncSession = Depends(session)) -> UserOut:
    company = await db.get(Company, body.company_id)
    if company is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no company {body.company_id}")
    user = User(**body.model_dump(), created_at=datetime.now(UTC))
    db.add(user)
    try:
        await db.flush()
        job_id = (
            await enqueue_in(db, "email.send_email", kwargs=welcome_email(user, company))
            if user.notify_deadlines
            else None
        )
        await db.commit()  # the user and the email, or neither
    except IntegrityError:
        await db.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, f"a user with email {body.email} exists") from None
    fields = {k: getattr(user, k) for k in UserOut.model_fields if k != "welcome_job_id"}
    return UserOut(**fields, welcome_job_id=job_id)


def welcome_email(user: User, company: Company) -> dict[str, Any]:
    """The confirmation a new user gets when deadline alerts are on; sent once per user (idempotency key)."""
    windows = ", ".join(str(d) for d in user.alert_windows_days or (14, 7, 1))
    return {
        "to": [user.email],
        "subject": "Deadline alerts are on",
        "text": (
            f"Hello{' ' + user.name if user.name else ''},\n\n"
            f"you will get an email {windows} days before the deadline of grants matching {company.name}.\n"
        ),
        "idempotency_key": f"welcome:user:{user.id}",
    }


@router.get("/companies/{company_id}/matches", response_model=MatchesOut, responses=NOT_FOUND)
async def company_matches(
    company_id: CompanyId, limit: int = Query(50, ge=1, le=500), db: AsyncSession = Depends(session)
) -> MatchesOut:
    """The company's current matches, best first, with the reasons of each score."""
    if await db.get(Company, company_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no company {company_id}")
    rows = await db.execute(
        select(MatchResult, Grant.title, Grant.source, Grant.deadline, Grant.url)
        .join(Grant, Grant.id == MatchResult.grant_id)
        .where(MatchResult.company_id == company_id)
        .order_by(MatchResult.rank)
        .limit(limit)
    )
    matches: list[dict[str, Any]] = [
        {
            "rank": m.rank,
            "grant_id": m.grant_id,
            "title": title,
            "source": source,
            "score": m.score,
            "reasons": m.reasons,
            "deadline": deadline,
            "url": url,
            "computed_at": m.computed_at,
        }
        for m, title, source, deadline, url in rows
    ]
    computed_at = max((m["computed_at"] for m in matches), default=None)
    return MatchesOut(company_id=company_id, computed_at=computed_at, matches=[MatchOut(**m) for m in matches])
