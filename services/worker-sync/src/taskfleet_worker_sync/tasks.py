"""The sync queue's tasks (seed 000's grant pipeline, sync, scheduled and maintenance tasks).

Each task is a thin shell: validate arguments (contract), take a lock where overlap would
hurt, run the async pipeline code with ``run_async``, report progress, return a summary.

``sync_all_grants`` replaces itself with a chord: the per-source syncs in parallel, then one
finishing task that deduplicates, embeds and reindexes and returns the summary. Inside the
chord a failing source returns ``status: failed`` instead of raising, so the others and the
finishing steps still run and the summary names the failure; run on its own, a source task
raises (``TransientError`` for 5xx/timeouts: retried with the queue's backoff).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from celery import chord, group, shared_task
from sqlalchemy.ext.asyncio import AsyncSession
from taskfleet_core.broker.client import client
from taskfleet_core.reliability.locks import LockLost, try_lock
from taskfleet_core.settings import load
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_core.tasks.contracts import (
    Args,
    DeduplicateArgs,
    EmbeddingArgs,
    NoArgs,
    SourceSyncArgs,
    SyncAllArgs,
    TaskContract,
)
from taskfleet_core.tasks.errors import PermanentError, TransientError
from taskfleet_core.tasks.fleet_task import FleetTask, implements, task_options
from taskfleet_core.tasks.queues import QUEUES
from taskfleet_data.db import database, session_for
from taskfleet_data.settings import DataSettings

from taskfleet_worker_sync import dedup, maintenance
from taskfleet_worker_sync.pipeline import sync_source

T = TypeVar("T")

log = logging.getLogger("taskfleet.sync.tasks")

#: wire name of each source's sync task
SOURCE_TASKS = {
    "cordis": "pipeline.sync_cordis_grants",
    "eu_portal": "pipeline.sync_eu_portal_grants",
    "iati": "pipeline.sync_iati_grants",
    "gcf": "pipeline.sync_gcf_projects",
    "world_bank": "pipeline.sync_world_bank_projects",
}
#: the chord's finishing step; internal (not a contract: nobody sends it by name)
FINISH_TASK = "pipeline.finish_sync_all"


def _database_url() -> str:
    return load(DataSettings).database_url


def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``work(session)`` on the migrated database, through the async bridge (one engine per call)."""

    async def run() -> T:
        async with session_for(_database_url()) as session:
            return await work(session)

    return run_async(run)


def run_source_sync(task: FleetTask, source: str, args: SourceSyncArgs) -> dict[str, Any]:
    """One source's sync under its fenced lock: renewed while it runs, checked before every page is written,
    and its fence checked by the database on every write (``store.fence_state``)."""
    lock, reason = try_lock(client(), f"grant-sync:{source}", QUEUES["sync"].time_limit, task.request.id or "")
    if lock is None:
        return {"source": source, "status": "skipped", "error": reason}
    try:
        with lock.renewing():
            result = run_async(
                lambda: sync_source(
                    source,
                    full=args.full,
                    max_pages=args.max_pages,
                    progress=task.report_progress,
                    fence=lock.fence,
                    guard=lock.check,
                )
            )
    except LockLost as exc:  # another run of this source holds the lock now: it syncs; this one stops
        log.warning("%s sync stopped: %s", source, exc)
        return {"source": source, "status": "skipped", "error": str(exc)}
    finally:
        lock.release()
    if result.status == "failed" and not task.request.chord:
        raise (TransientError if result.retryable else PermanentError)(result.error)
    return result.as_dict()


def _register_source_task(source: str, name: str) -> FleetTask:
    @implements(name)
    def sync_one(task: FleetTask, args: SourceSyncArgs) -> dict[str, Any]:
        return run_source_sync(task, source, args)

    sync_one.__doc__ = f"Sync the {source} source (incremental from its watermark; full when asked)."
    return sync_one


sync_cordis_grants = _register_source_task("cordis", SOURCE_TASKS["cordis"])
sync_eu_portal_grants = _register_source_task("eu_portal", SOURCE_TASKS["eu_portal"])
sync_iati_grants = _register_source_task("iati", SOURCE_TASKS["iati"])
sync_gcf_projects = _register_source_task("gcf", SOURCE_TASKS["gcf"])
sync_world_bank_projects = _register_source_task("world_bank", SOURCE_TASKS["world_bank"])


def enabled_sources() -> list[str]:
    configured = load(DataSettings).enabled_sources()
    return [s for s in configured if s in SOURCE_TASKS]


def orchestrate(task: FleetTask, full: bool, sources: Sequence[str] | None) -> Any:
    """Replace ``task`` by the chord: per-source syncs, then ``finish_sync_all`` (its result is the summary)."""
    chosen = list(sources or enabled_sources())
    header = group(task.app.signature(SOURCE_TASKS[s], kwargs={"full": full}) for s in chosen)
    body = finish_sync_all.s(full=full, sources=chosen)
    log.info("sync_all: %s sync of %s, then dedup, embeddings, reindex", "full" if full else "incremental", chosen)
    return task.replace(chord(header, body))


@implements("pipeline.sync_all_grants")
def sync_all_grants(task: FleetTask, args: SyncAllArgs) -> Any:
    return orchestrate(task, args.full, args.sources)


@implements("sync.sync_all_grant_sources")
def sync_all_grant_sources(task: FleetTask, args: SyncAllArgs) -> Any:
    """The legacy periodic sync (every PIPELINE_SYNC_INTERVAL_HOURS): the same chord."""
    return orchestrate(task, args.full, args.sources)


@implements("scheduled.daily_grant_sync")
def daily_grant_sync(task: FleetTask, args: NoArgs) -> Any:
    return orchestrate(task, False, None)


@implements("scheduled.weekly_full_sync")
def weekly_full_sync(task: FleetTask, args: NoArgs) -> Any:
    return orchestrate(task, True, None)


class FinishArgs(Args):
    full: bool = False
    sources: list[str] = []


FINISH_CONTRACT = TaskContract(FINISH_TASK, "sync", FinishArgs, "Dedup, embeddings and reindex after the syncs")


def _register_finish(fn: Callable[..., dict[str, Any]]) -> FleetTask:
    """``shared_task`` with the contract's options (an options dict, so celery-types cannot pick an overload)."""
    registered: FleetTask = shared_task(**task_options(FINISH_CONTRACT) | {"contract": FINISH_CONTRACT})(fn)
    return registered


@_register_finish
def finish_sync_all(
    self: FleetTask, results: list[Any], full: bool = False, sources: list[str] | None = None
) -> dict[str, Any]:
    """Chord body: deduplicate, embed, reindex; then the summary of the whole run."""
    per_source: dict[str, dict[str, Any]] = {}
    for source, result in zip(sources or [], results, strict=False):
        per_source[source] = result if isinstance(result, dict) else {"status": "failed", "error": repr(result)}
    self.report_progress(0, 3, "deduplicating")

    async def finish() -> dict[str, Any]:
        async with database(_database_url()) as sessions:
            async with sessions() as session:
                duplicates = await dedup.deduplicate(session)
            self.report_progress(1, 3, "embedding")
            async with sessions() as session:
                embedded = await maintenance.generate_embeddings(session)
            self.report_progress(2, 3, "reindexing")
            async with sessions() as session:
                indexed = await maintenance.reindex_search(session)
        return {"deduplicate": duplicates, "embeddings": embedded, "search": indexed}

    steps = run_async(finish)
    failed = sorted(s for s, r in per_source.items() if r.get("status") == "failed")
    return {
        "full": full,
        "sources": per_source,
        "failed": failed,
        "succeeded": sorted(s for s, r in per_source.items() if r.get("status") == "ok"),
        # another run of the same source held its lock (overlapping schedules): that run syncs it
        "skipped": sorted(s for s, r in per_source.items() if r.get("status") == "skipped"),
        **steps,
    }


@implements("pipeline.generate_grant_embeddings_task")
def generate_grant_embeddings_task(task: FleetTask, args: EmbeddingArgs) -> dict[str, Any]:
    return _with_session(
        lambda session: maintenance.generate_embeddings(session, args.batch_size, args.limit, task.report_progress)
    )


@implements("pipeline.deduplicate_grants_task")
def deduplicate_grants_task(task: FleetTask, args: DeduplicateArgs) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with database(_database_url()) as sessions:
            async with sessions() as session:
                duplicates = await dedup.deduplicate(session, args.similarity_threshold)
            async with sessions() as session:  # duplicates leave the index, canonical grants join it
                indexed = await maintenance.reindex_search(session)
        return {**duplicates, "search": indexed}

    return run_async(run)


@implements("scheduled.cleanup_expired_grants")
def cleanup_expired_grants(task: FleetTask, args: NoArgs) -> dict[str, Any]:
    return _with_session(maintenance.cleanup_expired)


@implements("maintenance.reindex_search")
def reindex_search(task: FleetTask, args: NoArgs) -> dict[str, Any]:
    return _with_session(maintenance.reindex_search)
