"""Schemathesis ``--checks all`` against a real API process: 0 failures, with a fixed seed.

The schemathesis CLI itself runs (every phase: examples, coverage, fuzzing, stateful; positive and
negative data; every check, including ignored_auth and positive_data_acceptance) against uvicorn
serving the API on the session's Valkey and SQLite, with ``SUITE_EXAMPLES`` (200) examples per
operation (about 3,400 cases, about a minute on 2 cores); ``FUZZ_EXAMPLES=1000 uv run pytest
tests/api/test_fuzz.py -s`` runs a longer one and prints schemathesis' summary.
Jobs it manages to submit are removed from the session's queues and schedules afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import API_TEST_TOKEN
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess

SEED = 13
SUITE_EXAMPLES = 200
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", SUITE_EXAMPLES))


@pytest.fixture
def api_url(fleet_env: dict[str, str], tmp_path: Path, redis_client) -> Iterator[str]:
    port = free_port()
    api = ServiceProcess(
        "uvicorn",
        tmp_path / "api.log",
        fleet_env,
        ("--factory", "taskfleet_api.main:create_api", "--host", "127.0.0.1", "--port", str(port)),
    )
    api.start("Application startup complete")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        api.stop()
        from taskfleet_core.broker import schedule
        from taskfleet_core.tasks.queues import QUEUES

        for spec in QUEUES.values():  # delayed jobs wait in the queue's schedule, not its lists
            redis_client.delete(
                *spec.waiting_lists(), schedule.schedule_key(spec.name), schedule.messages_key(spec.name)
            )


@pytest.mark.timeout(1800)
def test_schemathesis_checks_all_pass(api_url: str, fleet_env: dict[str, str], tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is in the dev group"
    command = [
        cli,
        "run",
        f"{api_url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--header",
        f"Authorization: Bearer {API_TEST_TOKEN}",
        "--workers",
        "1",
        "--no-color",
    ]
    repo = str(Path(__file__).resolve().parents[2])
    env = {**fleet_env, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks", "PYTHONPATH": repo}
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1700)
    report = run.stdout + run.stderr
    (tmp_path / "schemathesis.txt").write_text(report)
    print(" ".join(command[:-5]), "...")  # the figures, for the closing note (-s)
    print(report[-3000:])
    assert run.returncode == 0, report[-8000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts and counts.group(1) == counts.group(2), report[-3000:]  # every generated case passed every check
    operations = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", report)
    assert operations and len({operations.group(1), operations.group(2), operations.group(3)}) == 1, report[-3000:]
    # operations without parameters have fewer distinct cases than EXAMPLES; the rest reach it
    assert int(counts.group(1)) >= EXAMPLES * (int(operations.group(3)) - 4), report[-3000:]
