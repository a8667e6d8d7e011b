"""The job API end to end with real workers: submit -> worker -> result, progress, revoke, bad input."""

from __future__ import annotations

import time
from typing import Any

import pytest
from taskfleet_core.tasks.contracts import CONTRACTS

from tests.integration.helpers import submit, wait_for_job


@pytest.fixture(scope="module", autouse=True)
def default_worker(workers):
    return workers.ensure("default")


def test_submit_runs_on_a_worker_and_reads_success(api) -> None:
    job_id = submit(api, "maintenance.canary", kwargs={"payload": {"hello": "fleet"}})
    job = wait_for_job(api, job_id)
    assert job["state"] == "SUCCESS"
    assert job["result"] == {"steps": 1, "attempts": 1, "payload": {"hello": "fleet"}}
    assert job["task"] == "maintenance.canary" and job["queue"] == "default"


def test_arguments_go_by_name_only(api) -> None:
    """Positional ``args`` are not part of the HTTP contract: the spec can then say exactly what each task takes."""
    response = api.post("/api/v1/jobs", json={"task": "maintenance.canary", "args": [2]})
    assert response.status_code == 422
    assert ["body", "args"] in [e["loc"] for e in response.json()["detail"]]


def test_the_spec_holds_each_contract(api) -> None:
    """The request schema has one branch per contract: the task's kwargs schema, as GET /api/v1/tasks serves it."""
    spec = api.get("/openapi.json").json()["components"]["schemas"]["JobRequest"]
    tasks = {t["name"]: t["args_schema"] for t in api.get("/api/v1/tasks").json()}
    branches = {b["properties"]["task"]["const"]: b["properties"]["kwargs"] for b in spec["oneOf"]}
    assert _without_defaults(branches) == _without_defaults(tasks)


def _without_defaults(schema: Any) -> Any:
    """Defaults are documentation (the OpenAPI rendering drops them inside ``oneOf``); the rules must match."""
    if isinstance(schema, dict):
        return {k: _without_defaults(v) for k, v in schema.items() if k != "default"}
    if isinstance(schema, list):
        return [_without_defaults(v) for v in schema]
    return schema


def test_progress_is_visible_while_running(api) -> None:
    job_id = submit(api, "maintenance.canary", kwargs={"steps": 4, "sleep_seconds": 4})
    running = wait_for_job(api, job_id, until=lambda j: j["state"] == "PROGRESS" and j["progress"]["done"] >= 1)
    assert running["progress"]["total"] == 4
    assert running["progress"]["message"].startswith("step ")
    assert wait_for_job(api, job_id)["state"] == "SUCCESS"


def test_transient_failure_is_retried_with_backoff(api) -> None:
    job = wait_for_job(api, submit(api, "maintenance.canary", kwargs={"fail_attempts": 2}), timeout=60)
    assert job["state"] == "SUCCESS"
    assert job["result"]["attempts"] == 3 and job["retries"] == 2


def test_permanent_failure_is_not_retried(api) -> None:
    job = wait_for_job(api, submit(api, "maintenance.canary", kwargs={"fail_permanently": True}))
    assert job["state"] == "FAILURE"
    assert job["error"] == {"type": "PermanentError", "message": "canary asked to fail permanently"}
    assert job["retries"] == 0


def test_revoke_a_waiting_job(api) -> None:
    job_id = submit(api, "maintenance.canary", kwargs={"payload": {"ran": True}}, countdown=3)
    response = api.post(f"/api/v1/jobs/{job_id}/revoke")
    assert response.status_code == 200 and response.json()["state"] == "REVOKED"
    time.sleep(4)  # past its countdown: it must not have run
    assert api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "REVOKED"


def test_revoke_with_terminate_stops_a_running_job(api) -> None:
    job_id = submit(api, "maintenance.canary", kwargs={"steps": 30, "sleep_seconds": 30})
    wait_for_job(api, job_id, until=lambda j: j["state"] == "PROGRESS")
    assert api.post(f"/api/v1/jobs/{job_id}/revoke?terminate=true").status_code == 200
    job = wait_for_job(api, job_id, timeout=15)
    assert job["state"] == "REVOKED"


def test_revoking_a_finished_job_conflicts(api) -> None:
    job_id = submit(api, "maintenance.canary")
    wait_for_job(api, job_id)
    assert api.post(f"/api/v1/jobs/{job_id}/revoke").status_code == 409


# --- bad input -------------------------------------------------------------------------------------


def test_unknown_task_is_404(api) -> None:
    response = api.post("/api/v1/jobs", json={"task": "email.send_fax"})
    assert response.status_code == 404
    assert "email.send_fax" in response.json()["detail"]


def test_invalid_arguments_are_422_naming_the_field(api) -> None:
    response = api.post(
        "/api/v1/jobs", json={"task": "email.send_email", "kwargs": {"to": ["nobody"], "subject": "hi", "text": "x"}}
    )
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "kwargs", "to", 0]]


def test_unknown_argument_is_422(api) -> None:
    response = api.post("/api/v1/jobs", json={"task": "maintenance.canary", "kwargs": {"stepz": 2}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "kwargs", "stepz"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "maintenance.canary", "priority": 12}, "priority"),
        ({"task": "maintenance.canary", "countdown": -1}, "countdown"),
        ({"task": "maintenance.canary", "countdown": 8 * 24 * 3600}, "countdown"),  # over API_MAX_DELAY_SECONDS
        ({"task": "maintenance.canary", "kwargs": {"steps": 2, "stpes": 3}}, "stpes"),
        ({"task": "maintenance.monthly_statistics", "kwargs": {"year": 2026}}, "kwargs"),
        ({"task": "maintenance.canary", "eta": 0}, "eta"),
        ({"task": "maintenance.canary", "eta": "2411-03-29T04:05:10-23:29"}, "eta"),  # over API_MAX_DELAY_SECONDS
        ({"tsak": "maintenance.canary"}, "task"),
    ],
)
def test_bad_request_fields_are_422(api, body, field) -> None:
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 422
    assert any(field in e["loc"] for e in response.json()["detail"]), response.json()


def test_countdown_and_eta_together_are_422(api) -> None:
    response = api.post(
        "/api/v1/jobs", json={"task": "maintenance.canary", "countdown": 1, "eta": "2030-01-01T00:00:00Z"}
    )
    assert response.status_code == 422


def test_oversized_body_is_413(api) -> None:
    huge = {"task": "maintenance.canary", "kwargs": {"payload": {"blob": "x" * 200_000}}}
    response = api.post("/api/v1/jobs", json=huge)
    assert response.status_code == 413
    chunked = api.post(
        "/api/v1/jobs",
        content=iter([b'{"task": "', b"x" * 100_000, b'"}']),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413


def test_malformed_json_is_422_without_a_stack_trace(api) -> None:
    response = api.post("/api/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "Traceback" not in response.text


def test_unknown_job_is_404(api) -> None:
    assert api.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.post("/api/v1/jobs/00000000-0000-0000-0000-000000000000/revoke").status_code == 404


# --- catalog and health ----------------------------------------------------------------------------


def test_tasks_lists_every_contract_with_its_schema(api) -> None:
    tasks = {t["name"]: t for t in api.get("/api/v1/tasks").json()}
    assert set(tasks) == set(CONTRACTS)
    assert tasks["email.send_email"]["queue"] == "email"
    assert {"to", "subject", "text"} <= set(tasks["email.send_email"]["args_schema"]["required"])


def test_queues_report_waiting_and_in_flight(api) -> None:
    queues = {q["name"]: q for q in api.get("/api/v1/queues").json()}
    assert set(queues) == {"default", "matching", "email", "sync"}
    assert queues["email"]["rate_limit"] == "30/m" and queues["sync"]["rate_limit"] == "10/m"
    assert {"waiting", "in_flight", "waiting_by_priority"} <= set(queues["default"])


def test_in_flight_counts_running_work_of_that_queue(api) -> None:
    job_id = submit(api, "maintenance.canary", kwargs={"steps": 2, "sleep_seconds": 3})
    wait_for_job(api, job_id, until=lambda j: j["state"] == "PROGRESS")
    queues = {q["name"]: q for q in api.get("/api/v1/queues").json()}
    assert queues["default"]["in_flight"] == 1
    assert queues["email"]["in_flight"] == 0
    wait_for_job(api, job_id)


def test_health_endpoints(api) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").status_code == 200
    assert api.get("/docs").status_code == 200
    assert "/api/v1/jobs" in api.get("/openapi.json").json()["paths"]
