"""The console's pages under ``/console``: server-rendered (Jinja2, autoescaped), live parts polled by htmx.

Every page needs a console session (session.py); the DLQ's entries, like ``/api/v1/dlq``, need an admin token,
and so do replay and purge, which go through a confirmation page and are written to the audit log
(``taskfleet.audit``). They call the JSON API's own functions (dlq.py, jobs.py, joblog.py): one behaviour, two
front ends. None of these routes is in the OpenAPI spec.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from taskfleet_core.broker.client import client
from taskfleet_core.reliability.dlq import DeadLetterQueue
from taskfleet_core.settings import load

from taskfleet_api import dlq, joblog, jobs
from taskfleet_api.console import audit, session, sparkline, views
from taskfleet_api.console.session import Session
from taskfleet_api.console.settings import ConsoleSettings
from taskfleet_api.producer import celery_app, job_record
from taskfleet_api.progress import FINAL, bar_of
from taskfleet_api.settings import ApiSettings

HERE = Path(__file__).parent
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
)
templates.env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
templates.env.globals["sparkline"] = sparkline.points
templates.env.globals["SPARK_W"] = sparkline.WIDTH
templates.env.globals["SPARK_H"] = sparkline.HEIGHT

router = APIRouter(prefix="/console", include_in_schema=False)

LOGIN = "/console/login"


def signed_in(request: Request) -> Session:
    """Dependency of every page: the session, or a redirect to the login form (htmx follows HX-Redirect)."""
    found = session.current(request)
    if found is None:
        if request.headers.get("hx-request") == "true":  # a poll: htmx reloads the whole page to the login form
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in", headers={"HX-Redirect": LOGIN})
        raise HTTPException(status.HTTP_303_SEE_OTHER, "sign in", headers={"Location": LOGIN})
    return found


def admin(current: Session = Depends(signed_in)) -> Session:
    if not current.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs an admin token (API_TOKENS)")
    return current


def render(request: Request, name: str, current: Session | None, code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"session": current, "now": datetime.now(UTC), **context}, status_code=code
    )


# -- sign in / out ---------------------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request) -> Response:
    carrier = Response()
    csrf = session.login_csrf(request, carrier)
    return render_with_cookies(request, carrier, csrf, None)


def render_with_cookies(request: Request, carrier: Response, csrf: str, error: str | None, code: int = 200) -> Response:
    """The login page with its CSRF value, keeping the cookie headers ``carrier`` collected."""
    page = render(request, "login.html", None, code, error=error, csrf=csrf)
    for value in carrier.headers.getlist("set-cookie"):
        page.headers.append("set-cookie", value)
    return page


@router.post("/login")
def login(request: Request, token: str = Form(..., max_length=500), csrf: str = Form("", max_length=100)) -> Response:
    session.check_login_csrf(request, csrf)
    response = RedirectResponse("/console/", status.HTTP_303_SEE_OTHER)
    if not session.login(request, response, token):
        carrier = Response()
        fresh = session.login_csrf(request, carrier)
        return render_with_cookies(request, carrier, fresh, "That token is not valid.", status.HTTP_401_UNAUTHORIZED)
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form("", max_length=100), current: Session = Depends(signed_in)) -> Response:
    session.check_csrf(current, csrf)
    response = RedirectResponse(LOGIN, status.HTTP_303_SEE_OTHER)
    session.logout(request, response)
    return response


# -- queues and workers ----------------------------------------------------------------------------------------


@router.get("")
@router.get("/")
def overview(request: Request, current: Session = Depends(signed_in)) -> HTMLResponse:
    return render(request, "overview.html", current, queues=views.queues(), workers=views.workers())


@router.get("/fragments/queues")
def queues_fragment(request: Request, current: Session = Depends(signed_in)) -> HTMLResponse:
    return render(request, "_queues.html", current, queues=views.queues())


@router.get("/workers")
def workers_page(request: Request, current: Session = Depends(signed_in)) -> HTMLResponse:
    return render(request, "workers.html", current, workers=views.workers())


@router.get("/fragments/workers")
def workers_fragment(request: Request, current: Session = Depends(signed_in)) -> HTMLResponse:
    return render(request, "_workers.html", current, workers=views.workers())


@router.get("/beat")
def beat_page(request: Request, current: Session = Depends(signed_in)) -> HTMLResponse:
    entries, leader = views.beat_entries()
    return render(request, "beat.html", current, entries=entries, leader=leader)


# -- jobs ------------------------------------------------------------------------------------------------------


def _listing(state: str | None, task: str | None, queue: str | None, since: str | None) -> dict[str, Any]:
    moment = None
    if since:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    total, items = joblog.listing(
        load(ApiSettings),
        state=state or None,
        task=task or None,
        queue=queue or None,
        since=moment,
        offset=0,
        limit=100,
    )
    filters = {"state": state or "", "task": task or "", "queue": queue or "", "since": since or ""}
    return {
        "total": total,
        "items": items,
        "filters": filters,
        "query": "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v),
    }


@router.get("/jobs")
def jobs_page(
    request: Request,
    state: str | None = Query(None, max_length=20),
    task: str | None = Query(None, max_length=200),
    queue: str | None = Query(None, max_length=50),
    since: str | None = Query(None, max_length=40),
    current: Session = Depends(signed_in),
) -> HTMLResponse:
    return render(
        request, "jobs.html", current, states=sorted(get_args(jobs.JobState)), **_listing(state, task, queue, since)
    )


@router.get("/fragments/jobs")
def jobs_fragment(
    request: Request,
    state: str | None = Query(None, max_length=20),
    task: str | None = Query(None, max_length=200),
    queue: str | None = Query(None, max_length=50),
    since: str | None = Query(None, max_length=40),
    current: Session = Depends(signed_in),
) -> HTMLResponse:
    return render(request, "_jobs.html", current, **_listing(state, task, queue, since))


def _job(job_id: str) -> dict[str, Any]:
    """One job as ``GET /api/v1/jobs/{id}`` reads it, plus its arguments (result_extended meta), its progress
    as a bar and its trace id."""
    status_ = jobs.get_job(job_id)  # 404 for an unknown id
    meta = celery_app().backend.get_task_meta(job_id)
    record = job_record(job_id) or {}
    total, done = bar_of(status_.model_dump())  # the CLI's bar (progress.py), drawn as <progress>
    message = (status_.progress or {}).get("message") or ("done" if status_.state == "SUCCESS" else "")
    bar = (done, total, message) if total else None
    trace_id = record.get("trace_id")
    trace_url = load(ConsoleSettings).console_trace_url
    return {
        "job": status_,
        "kwargs": jobs.readable(meta.get("kwargs")) if isinstance(meta, dict) else None,
        "bar": bar,
        "final": status_.state in FINAL,
        "trace_id": trace_id,
        "trace_link": trace_url.replace("{trace_id}", trace_id) if trace_id and trace_url else None,
        "replay_of": record.get("replay_of"),
    }


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, current: Session = Depends(signed_in)) -> HTMLResponse:
    return render(request, "job.html", current, **_job(job_id))


@router.get("/fragments/jobs/{job_id}")
def job_fragment(request: Request, job_id: str, current: Session = Depends(signed_in)) -> HTMLResponse:
    return render(request, "_job.html", current, **_job(job_id))


# -- the DLQ ---------------------------------------------------------------------------------------------------


@router.get("/dlq")
def dlq_page(
    request: Request,
    queue: dlq.QueueName | None = None,
    offset: int = Query(0, ge=0, le=1_000_000),
    current: Session = Depends(signed_in),
) -> HTMLResponse:
    """Sizes for every token (the exporter's numbers); the entries, like /api/v1/dlq, only for an admin token."""
    sizes = DeadLetterQueue(client()).sizes()
    page = None
    if current.admin:
        page = dlq.list_dead_letters(queue=queue, task=None, reason=None, offset=offset, limit=50)
    return render(request, "dlq.html", current, sizes=sizes, page=page, queue=queue or "")


@router.get("/dlq/{entry_id}")
def dead_letter_page(request: Request, entry_id: str, current: Session = Depends(admin)) -> HTMLResponse:
    return render(request, "dead_letter.html", current, entry=dlq.get_dead_letter(entry_id))


Action = Literal["replay", "purge"]


@router.get("/dlq/{entry_id}/{action}")
def confirm_page(request: Request, entry_id: str, action: Action, current: Session = Depends(admin)) -> HTMLResponse:
    """The confirmation step: nothing happens until its form is posted."""
    return render(request, "confirm.html", current, entry=dlq.get_dead_letter(entry_id), action=action)


@router.post("/dlq/{entry_id}/{action}")
def act(
    request: Request,
    entry_id: str,
    action: Action,
    csrf: str = Form("", max_length=100),
    current: Session = Depends(admin),
) -> Response:
    session.check_csrf(current, csrf)
    who = {"token": current.fingerprint, "client": request.client.host if request.client else "?"}
    try:
        if action == "replay":
            replayed = dlq.replay_dead_letter(entry_id)
            audit.record(
                "console replay of dead letter %s as job %s (repeated=%s) by token %s from %s",
                entry_id,
                replayed.new_job_id,
                replayed.repeated,
                who["token"],
                who["client"],
            )
            return RedirectResponse(f"/console/jobs/{quote(replayed.new_job_id)}", status.HTTP_303_SEE_OTHER)
        purged = dlq.purge_dead_letter(entry_id)
        audit.record(
            "console purge of dead letter %s (purged=%d) by token %s from %s",
            entry_id,
            purged.purged,
            who["token"],
            who["client"],
        )
        return RedirectResponse("/console/dlq", status.HTTP_303_SEE_OTHER)
    except HTTPException as exc:
        audit.record(
            "console %s of dead letter %s refused (%s: %s) by token %s from %s",
            action,
            entry_id,
            exc.status_code,
            exc.detail,
            who["token"],
            who["client"],
        )
        return render(
            request, "refused.html", current, exc.status_code, action=action, entry_id=entry_id, detail=exc.detail
        )
