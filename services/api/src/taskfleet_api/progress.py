"""Live progress bars in the terminal (rich) for ``taskfleet status --follow`` and ``taskfleet jobs --watch``.

A job's bar comes from its progress meta (``{"done", "total", "message"}``, FleetTask.report_progress); a job with
none shows an indeterminate bar until it finishes, then a full one. The bars go to stderr, so stdout keeps the
command's JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

FINAL = {"SUCCESS", "FAILURE", "REVOKED"}
POLL_SECONDS = 0.5


def bar_of(job: dict[str, Any]) -> tuple[float | None, float]:
    """(total, completed) for a job: its reported progress, full when it succeeded, unknown (None) otherwise."""
    meta = job.get("progress") or {}
    done, total = meta.get("done"), meta.get("total")
    if job["state"] == "SUCCESS":
        total = total if isinstance(total, int) and total > 0 else 1
        return total, total
    if isinstance(done, int) and isinstance(total, int) and total > 0:
        return total, min(done, total)
    return None, 0


def describe(job: dict[str, Any]) -> str:
    message = (job.get("progress") or {}).get("message") or ""
    return f"{job['id'][:8]} {job['task']} [bold]{job['state']}[/] {message}".rstrip()


def follow(
    read: Callable[[], list[dict[str, Any]]],
    timeout: float,
    console: Console | None = None,
    poll: float = POLL_SECONDS,
) -> list[dict[str, Any]]:
    """Poll ``read`` (the jobs to show) and redraw their bars until all are final or ``timeout`` passes; returns
    the last jobs read."""
    console = console or Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bars: dict[str, TaskID] = {}
    totals: dict[str, float] = {}  # the last reported total: a finished job's bar stays in the same units
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console, refresh_per_second=4) as progress:
        while True:
            jobs = read()
            for job in jobs:
                total, completed = bar_of(job)
                if job["state"] == "SUCCESS" and not job.get("progress") and job["id"] in totals:
                    total = completed = totals[job["id"]]
                elif total is not None:
                    totals[job["id"]] = total
                if job["id"] not in bars:
                    bars[job["id"]] = progress.add_task(describe(job), total=total)
                progress.update(bars[job["id"]], total=total, completed=completed, description=describe(job))
            if all(job["state"] in FINAL for job in jobs) or time.monotonic() > deadline:
                return jobs
            time.sleep(poll)
