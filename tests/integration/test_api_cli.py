"""``taskfleet submit|status|jobs|dlq|queues`` against the API, through the same endpoints and tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from taskfleet_api import cli

from tests.conftest import API_TEST_TOKEN


@pytest.fixture(scope="module", autouse=True)
def default_worker(workers):
    return workers.ensure("default")


def run(api: TestClient, capsys, *argv: str) -> tuple[int, object, str]:
    client = TestClient(api.app, headers=dict(api.headers))
    code = cli.main(list(argv), client=client)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_submit_wait_status_and_jobs(api, capsys) -> None:
    code, job, _ = run(api, capsys, "submit", "maintenance.canary", "--kwargs", '{"payload": {"cli": true}}', "--wait")
    assert code == 0 and job["state"] == "SUCCESS" and job["result"]["payload"] == {"cli": True}
    code, status, _ = run(api, capsys, "status", job["id"])
    assert code == 0 and status["id"] == job["id"] and status["state"] == "SUCCESS"
    code, failed, _ = run(
        api, capsys, "submit", "maintenance.canary", "--kwargs", '{"fail_permanently": true}', "--wait"
    )
    assert code == 3 and failed["state"] == "FAILURE"
    code, page, _ = run(api, capsys, "jobs", "--state", "FAILURE", "--task", "maintenance.canary", "--limit", "5")
    assert code == 0 and page["items"][0]["id"] == failed["id"]
    assert all(j["state"] == "FAILURE" for j in page["items"])


def test_queues_and_dlq(api, capsys) -> None:
    code, queues, _ = run(api, capsys, "queues")
    assert code == 0 and {q["name"] for q in queues} == {"default", "matching", "email", "sync"}
    code, dlq, _ = run(api, capsys, "dlq", "--queue", "email")
    assert code == 0 and {"total", "items"} <= set(dlq)
    code, _, err = run(api, capsys, "dlq", "show", "no-such-entry")
    assert code == 1 and "404" in err and "no-such-entry" in err


def test_refusals_name_the_field(api, capsys) -> None:
    code, _, err = run(api, capsys, "submit", "maintenance.canary", "--kwargs", '{"steps": "2"}')
    assert code == 1 and "422" in err and '"steps"' in err


def test_console_script_reports_an_unreachable_api(fleet_env: dict[str, str]) -> None:
    """The installed ``taskfleet`` script says which API it cannot reach, exit status 1, no token in the message."""
    script = Path(sys.executable).parent / "taskfleet"
    done = subprocess.run(
        [str(script), "--url", "http://127.0.0.1:9", "queues"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "cannot reach the API" in done.stderr
    assert API_TEST_TOKEN not in done.stderr
