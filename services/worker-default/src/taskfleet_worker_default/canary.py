"""``maintenance.canary``: a synthetic job that proves a queue end to end.

Operators (and the load, chaos and dashboard tests) use it to exercise progress
reporting, transient retries with backoff and permanent failures on demand.
"""

from __future__ import annotations

import time
from typing import Any

from taskfleet_core.tasks.contracts import CanaryArgs
from taskfleet_core.tasks.errors import PermanentError, TransientError
from taskfleet_core.tasks.fleet_task import FleetTask, implements


@implements("maintenance.canary")
def canary(task: FleetTask, args: CanaryArgs) -> dict[str, Any]:
    attempt = task.request.retries
    if args.fail_permanently:
        raise PermanentError("canary asked to fail permanently")
    if attempt < args.fail_attempts:
        raise TransientError(f"canary transient failure {attempt + 1} of {args.fail_attempts}")
    for step in range(args.steps):
        if args.sleep_seconds:  # an instant run has no progress worth a write (a result store per step)
            task.report_progress(step, args.steps, f"step {step + 1} of {args.steps}")
            time.sleep(args.sleep_seconds / args.steps)
    return {"steps": args.steps, "attempts": attempt + 1, "payload": args.payload}
