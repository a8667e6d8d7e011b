"""``maintenance.health_check``: is every service the fleet depends on reachable, and how deep are the queues?"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiosmtplib
from taskfleet_core.broker.client import client
from taskfleet_core.broker.depths import queue_depths
from taskfleet_core.settings import SmtpSettings, load
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_core.tasks.contracts import NoArgs
from taskfleet_core.tasks.fleet_task import FleetTask, implements
from taskfleet_data import engine
from taskfleet_data.settings import DataSettings

from taskfleet_worker_default.freshness import sync_freshness


async def _timed(check: Callable[[], Awaitable[Any]], timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), timeout)
    except Exception as exc:  # a health check reports failures, it does not raise them
        return {
            "ok": False,
            "error": f"{exc.__class__.__name__}: {exc}",
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    return {"ok": True, "detail": detail, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


async def _smtp(settings: SmtpSettings) -> str:
    smtp = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port, timeout=settings.smtp_timeout_seconds)
    await smtp.connect()
    try:
        code, _ = await smtp.noop()
        return f"NOOP {code}"
    finally:
        smtp.close()


async def _broker() -> str:
    return "PONG" if await asyncio.to_thread(client().ping) else "no reply"


def check_all(task: FleetTask | None, smtp: SmtpSettings, data: DataSettings) -> dict[str, Any]:
    timeout = smtp.smtp_timeout_seconds
    checks: dict[str, dict[str, Any]] = {}
    probes: dict[str, Callable[[], Awaitable[Any]]] = {
        "broker": _broker,
        "database": lambda: engine.ping(data.database_url),
        "smtp": lambda: _smtp(smtp),
    }
    for done, (name, probe) in enumerate(probes.items()):
        if task is not None:
            task.report_progress(done, len(probes) + 1, f"checking {name}")
        checks[name] = run_async(functools.partial(_timed, probe, timeout))
    if task is not None:
        task.report_progress(len(probes), len(probes) + 1, "reading queue depths")
    queues = queue_depths(client()) if checks["broker"]["ok"] else {}
    # data freshness: last successful sync per source; stale sources degrade the report
    freshness = run_async(lambda: _timed(lambda: sync_freshness(data), 30)) if checks["database"]["ok"] else {}
    fresh = not freshness or (freshness["ok"] and not freshness["detail"]["stale_sources"])
    return {
        "status": "ok" if all(c["ok"] for c in checks.values()) and fresh else "degraded",
        "freshness": freshness,
        "checked_at": datetime.now(UTC).isoformat(),
        "checks": checks,
        "queues": queues,
    }


@implements("maintenance.health_check")
def health_check(task: FleetTask, args: NoArgs) -> dict[str, Any]:
    return check_all(task, load(SmtpSettings), load(DataSettings))
