"""The job index behind ``GET /api/v1/jobs``: a bounded Valkey sorted set of submitted jobs.

Every job the API submits (and every DLQ replay) is added with its submission time as the score;
on each add the set is trimmed by age (``API_JOB_INDEX_MAX_AGE_SECONDS``) and by size
(``API_JOB_INDEX_MAX``, oldest first), so it never grows without bound. A listing reads the
newest entries since ``since`` (at most ``API_JOB_INDEX_MAX``), their job records (task, queue)
and their states by key (``MGET`` of the result keys): point lookups of a bounded set, never a
scan of the result backend. A job whose result has expired (``RESULT_EXPIRES``) reads PENDING,
as ``GET /jobs/{id}`` does.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel
from taskfleet_core.broker.client import client
from taskfleet_core.broker.keys import JOB_KEY, KEY_PREFIX

from taskfleet_api.producer import celery_app, send
from taskfleet_api.settings import ApiSettings

#: ZSET: job id -> submission time (epoch seconds). Trimmed by age and size on every add; no TTL.
JOB_INDEX_KEY = KEY_PREFIX + "jobs:index"


class JobSummary(BaseModel):
    """One row of ``GET /api/v1/jobs``."""

    id: str
    task: str
    queue: str
    state: str
    submitted_at: str
    date_done: str | None


def index_commands(job_id: str, settings: ApiSettings, now: float | None = None) -> list[tuple[Any, ...]]:
    """Index a job and trim the index by age and size: commands to send with the job's publish."""
    now = time.time() if now is None else now
    return [
        ("ZADD", JOB_INDEX_KEY, now, job_id),
        ("ZREMRANGEBYSCORE", JOB_INDEX_KEY, "-inf", now - settings.api_job_index_max_age_seconds),
        ("ZREMRANGEBYRANK", JOB_INDEX_KEY, 0, -(settings.api_job_index_max + 1)),
    ]


def add(job_id: str, settings: ApiSettings, now: float | None = None) -> None:
    send(index_commands(job_id, settings, now))


def _state(raw: str | None) -> tuple[str, str | None]:
    if raw is None:
        return "PENDING", None
    try:
        meta = json.loads(raw)
    except ValueError:
        return "PENDING", None
    return str(meta.get("status", "PENDING")), meta.get("date_done")


def listing(
    settings: ApiSettings,
    *,
    state: str | None,
    task: str | None,
    queue: str | None,
    since: datetime | None,
    offset: int,
    limit: int,
) -> tuple[int, list[JobSummary]]:
    """Newest first: the total matching and one page."""
    lowest: float | str = since.timestamp() if since else "-inf"
    ids = cast(
        list[str],
        client().zrevrangebyscore(JOB_INDEX_KEY, "+inf", lowest, start=0, num=settings.api_job_index_max),
    )
    if not ids:
        return 0, []
    pipe = client().pipeline()
    for job_id in ids:
        pipe.hgetall(JOB_KEY.format(job_id=job_id))
    records = cast(list[dict[str, Any]], pipe.execute())
    backend: Any = celery_app().backend  # the Redis backend: one key per result
    keys = [backend.get_key_for_task(job_id).decode() for job_id in ids]
    metas = cast(list[str | None], client().mget(keys))
    matching: list[JobSummary] = []
    for job_id, record, raw in zip(ids, records, metas, strict=True):
        if not record:  # the record expired before the index entry: nothing left to show
            continue
        job_state, done = _state(raw)
        if (state and job_state != state) or (task and record["task"] != task) or (queue and record["queue"] != queue):
            continue
        matching.append(
            JobSummary(
                id=job_id,
                task=record["task"],
                queue=record["queue"],
                state=job_state,
                submitted_at=record["submitted_at"],
                date_done=done,
            )
        )
    return len(matching), matching[offset : offset + limit]
