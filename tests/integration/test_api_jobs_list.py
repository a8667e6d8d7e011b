"""``GET /api/v1/jobs``: what ran, by state, task, queue and time, from the bounded job index."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from taskfleet_api import joblog
from taskfleet_api.settings import ApiSettings

from tests.integration.helpers import submit, wait_for_job


@pytest.fixture(scope="module", autouse=True)
def default_worker(workers):
    return workers.ensure("default")


def test_lists_by_state_task_queue_and_time(api) -> None:
    since = datetime.now(UTC).isoformat()
    ok = submit(api, "maintenance.canary", kwargs={"payload": {"n": 1}})
    failed = submit(api, "maintenance.canary", kwargs={"fail_permanently": True})
    waiting = submit(api, "maintenance.canary", countdown=600)
    wait_for_job(api, ok), wait_for_job(api, failed)

    def ids(**params) -> list[str]:
        body = api.get("/api/v1/jobs", params={"since": since, **params}).json()
        return [j["id"] for j in body["items"]]

    assert ids() == [waiting, failed, ok]  # newest first
    assert ids(state="FAILURE") == [failed]
    assert ids(state="SUCCESS", task="maintenance.canary", queue="default") == [ok]
    assert ids(state="PENDING") == [waiting]
    assert ids(queue="email") == [] and ids(task="email.send_email") == []
    page = api.get("/api/v1/jobs", params={"since": since, "limit": 1, "offset": 1}).json()
    assert page["total"] == 3 and [j["id"] for j in page["items"]] == [failed]
    [entry] = page["items"]
    assert entry["task"] == "maintenance.canary" and entry["state"] == "FAILURE" and entry["date_done"]
    api.post(f"/api/v1/jobs/{waiting}/revoke")
    assert ids(state="REVOKED") == [waiting]


def test_bad_filters_are_422(api) -> None:
    for params, name in [({"state": "DONE"}, "state"), ({"queue": "nope"}, "queue"), ({"since": "yesterday"}, "since")]:
        response = api.get("/api/v1/jobs", params=params)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", name]


def test_index_is_bounded_by_size_and_age(redis_client) -> None:
    settings = ApiSettings(api_job_index_max=100, api_job_index_max_age_seconds=60)
    redis_client.delete(joblog.JOB_INDEX_KEY)
    now = time.time()
    for i in range(150):
        joblog.add(f"bound-{i}", settings, now=now + i * 0.001)
    assert redis_client.zcard(joblog.JOB_INDEX_KEY) == 100
    assert redis_client.zscore(joblog.JOB_INDEX_KEY, "bound-0") is None  # oldest trimmed first
    joblog.add("later", settings, now=now + 120)  # everything older than 60 s leaves
    assert redis_client.zrange(joblog.JOB_INDEX_KEY, 0, -1) == ["later"]
