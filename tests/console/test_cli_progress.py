"""``taskfleet status --follow`` and ``taskfleet jobs --watch`` against the real API and a real worker: the bar
drawn in a terminal (rich, forced to a terminal into a buffer) advances with the canary's reported steps."""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest
from rich.console import Console
from taskfleet_api import cli, progress

from tests.reliability.harness import TOKEN, Fleet

pytestmark = pytest.mark.usefixtures("default_worker")


def api(fleet: Fleet) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{fleet.api_port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )


def test_follow_draws_a_bar_that_advances(fleet: Fleet) -> None:
    job = fleet.submit("maintenance.canary", kwargs={"steps": 4, "sleep_seconds": 4})
    assert job
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)
    with api(fleet) as http:
        [final] = progress.follow(lambda: [http.get(f"/api/v1/jobs/{job}").json()], timeout=30, console=terminal)
    assert final["state"] == "SUCCESS"
    frames = [int(done) for done in re.findall(r"(\d)/4", screen.getvalue())]
    steps = [n for i, n in enumerate(frames) if i == 0 or n != frames[i - 1]]
    assert steps == sorted(steps) and len(set(steps)) >= 3 and steps[-1] == 4, steps  # moved, never back, full


def test_status_follow_and_jobs_watch_exit_with_the_outcome(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--url", f"http://127.0.0.1:{fleet.api_port}", "--token", TOKEN]
    ok = fleet.submit("maintenance.canary", kwargs={"steps": 2, "sleep_seconds": 1})
    assert ok
    assert cli.main([*base, "status", "--follow", ok, "--timeout", "30"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["state"] == "SUCCESS" and "maintenance.canary" in err  # JSON on stdout, bar on stderr
    failed = fleet.submit("maintenance.canary", kwargs={"fail_permanently": True})
    assert failed
    assert cli.main([*base, "status", "--follow", failed, "--timeout", "30"]) == 3
    capsys.readouterr()
    assert cli.main([*base, "jobs", "--task", "maintenance.canary", "--limit", "3", "--watch", "--timeout", "30"]) == 0
    watched = json.loads(capsys.readouterr().out)
    assert {j["id"] for j in watched} >= {ok, failed} and all(j["state"] in cli.FINAL for j in watched)
