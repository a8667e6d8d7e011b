"""Polling helpers for jobs running in real workers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

FINAL = {"SUCCESS", "FAILURE", "REVOKED"}


def submit(api: TestClient, task: str, **body: Any) -> str:
    response = api.post("/api/v1/jobs", json={"task": task, **body})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_for_job(
    api: TestClient, job_id: str, until: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 30
) -> dict[str, Any]:
    until = until or (lambda job: job["state"] in FINAL)
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if until(job):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job}")
        time.sleep(0.1)
