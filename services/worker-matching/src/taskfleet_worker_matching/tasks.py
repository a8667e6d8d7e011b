"""Matching tasks (seed 000 ``matching_tasks``): score companies against every open grant.

``refresh_all_matches`` takes an overlap lock (one per scope: all companies, or the recently
active ones), then fans out a chord: a group of ``calculate_matches_chunk`` tasks, one per
``chunk_size`` companies, whose callback ``finish_refresh`` releases the lock. A second run
while the first one's chunks are still working finds the lock held and skips, saying why;
so does a redelivered copy of the run that holds it (the lock's token is per execution).

The lock travels with the fan-out: every chunk renews it when it starts and while it works, so a
fan-out longer than the TTL keeps it, and a chunk whose fan-out lost it (expired, a newer refresh
holds it) writes nothing: the newer refresh scores the same companies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery import chord, group
from taskfleet_core.broker.client import client
from taskfleet_core.reliability.locks import LockLost, OverlapLock, try_lock
from taskfleet_core.settings import load
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_core.tasks.contracts import CompanyMatchesArgs, FinishRefreshArgs, MatchChunkArgs, RefreshMatchesArgs
from taskfleet_core.tasks.errors import PermanentError
from taskfleet_core.tasks.fleet_task import FleetTask, implements
from taskfleet_core.tasks.queues import QUEUES
from taskfleet_data.db import session_for
from taskfleet_data.settings import DataSettings

from taskfleet_worker_matching import data
from taskfleet_worker_matching.scoring import GrantMatrix, top_matches

log = logging.getLogger(__name__)

#: A refresh's lock outlives any normal fan-out (three task time limits), and no more.
REFRESH_LOCK_TTL = 3 * QUEUES["matching"].time_limit


async def _score_and_store(
    company_ids: list[int], top_n: int, job_id: str | None, guard: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    """Score and replace the companies' matches in one transaction; ``guard`` raises before any write when
    the fan-out's lock was lost."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    async with session_for(load(DataSettings).database_url) as session, session.begin():
        grants = GrantMatrix(await data.candidate_grants(session, now), now)
        profiles = await data.company_profiles(session, company_ids)
        scored = top_matches(profiles, grants, top_n)
        guard()
        for company_id in sorted(scored):
            await data.replace_matches(session, company_id, scored[company_id], now, job_id)
    return {
        "companies": len(profiles),
        "missing": sorted(set(company_ids) - {p.id for p in profiles}),
        "grants": len(grants),
        "kept": {str(cid): len(m) for cid, m in scored.items()},
        "seconds": round(time.perf_counter() - started, 3),
    }


@implements("matching.calculate_company_matches")
def calculate_company_matches(task: FleetTask, args: CompanyMatchesArgs) -> dict[str, Any]:
    """Score every candidate grant for one company; its top N replace its previous results."""
    result = run_async(lambda: _score_and_store([args.company_id], args.top_n, task.request.id))
    if result["missing"]:
        raise PermanentError(f"no company with id {args.company_id}")
    return {"company_id": args.company_id, "grants_scored": result["grants"], **result}


@implements("matching.calculate_matches_chunk")
def calculate_matches_chunk(task: FleetTask, args: MatchChunkArgs) -> dict[str, Any]:
    """One chunk of a fan-out; a company deleted since the fan-out started is simply skipped."""
    if not (args.lock and args.token):
        return run_async(lambda: _score_and_store(list(args.company_ids), args.top_n, task.request.id))
    lock = OverlapLock.held(client(), args.lock, args.token, REFRESH_LOCK_TTL)
    try:
        if not lock.renew():
            raise LockLost(f"lock {args.lock!r} is no longer held by this fan-out")
        with lock.renewing():
            return run_async(lambda: _score_and_store(list(args.company_ids), args.top_n, task.request.id, lock.check))
    except LockLost as exc:  # a newer refresh of this scope scores these companies; writing would race it
        log.warning("chunk of %s skipped: %s", args.lock, exc)
        return {"skipped": True, "reason": str(exc), "companies": 0}


async def _company_ids(active_within_days: int | None) -> list[int]:
    async with session_for(load(DataSettings).database_url) as session:
        return await data.company_ids_to_refresh(session, active_within_days, datetime.now(UTC))


def lock_name(active_within_days: int | None) -> str:
    scope = "all" if active_within_days is None else f"active-{active_within_days}d"
    return f"matching.refresh:{scope}"


@implements("matching.refresh_all_matches")
def refresh_all_matches(task: FleetTask, args: RefreshMatchesArgs) -> dict[str, Any]:
    """Fan out over companies in chunks, unless another refresh of the same scope is still running."""
    name = lock_name(args.active_within_days)
    # not worker-bound: the lock is handed on to the chunks and the callback, the worker that took it may go
    lock, reason = try_lock(client(), name, REFRESH_LOCK_TTL, task.request.id or "", worker_bound=False)
    if lock is None:
        return {"skipped": True, "reason": reason}
    try:
        ids = run_async(lambda: _company_ids(args.active_within_days))
        if not ids:
            lock.release()
            return {"skipped": False, "companies": 0, "chunks": 0}
        chunks = [ids[i : i + args.chunk_size] for i in range(0, len(ids), args.chunk_size)]
        header = group(
            task.app.signature(
                "matching.calculate_matches_chunk",
                kwargs={"company_ids": c, "lock": name, "token": lock.token},
                immutable=True,
            )
            for c in chunks
        )
        callback = task.app.signature(
            "matching.finish_refresh",
            kwargs={"lock": name, "token": lock.token, "companies": len(ids)},
            immutable=True,
        )
        result = chord(header)(callback)
    except Exception:
        lock.release()
        raise
    log.info("refresh_all_matches[%s]: %d companies in %d chunks", task.request.id, len(ids), len(chunks))
    return {"skipped": False, "companies": len(ids), "chunks": len(chunks), "callback_id": result.id, "lock": name}


@implements("matching.finish_refresh")
def finish_refresh(task: FleetTask, args: FinishRefreshArgs) -> dict[str, Any]:
    released = OverlapLock.held(client(), args.lock, args.token).release()
    log.info("refresh done: %d companies; lock %s released=%s", args.companies, args.lock, released)
    return {"companies": args.companies, "lock": args.lock, "released": released}
