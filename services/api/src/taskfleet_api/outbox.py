"""The API's side of the outbox: its publisher, the relay in the API process, and status of unpublished jobs.

* ``FleetPublisher`` is the producer path of ``POST /api/v1/jobs``: ``send_task`` with the outbox row's job id,
  then the job record, so ``GET /api/v1/jobs/{id}`` knows the job.
* ``router`` carries only a lifespan: with ``OUTBOX_RELAY_ENABLED`` (the default) each API server process runs
  a relay on its own thread (``RelayThread``); relays in several processes share the table safely.
* ``waiting_status(job_id)``: a job still in the outbox reads ``PENDING`` ("not yet published").
* ``python -m taskfleet_api.outbox`` runs a relay alone (with ``OUTBOX_RELAY_ENABLED=false`` on the API).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio.from_thread
from fastapi import APIRouter, FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from taskfleet_core.observability import logs, metrics
from taskfleet_core.settings import load
from taskfleet_data.db import migrated_engine
from taskfleet_data.outbox import OutboxMessage, Pending, Relay, RelayThread
from taskfleet_data.outbox.relay import Send
from taskfleet_data.outbox.settings import OutboxSettings
from taskfleet_data.settings import DataSettings

from taskfleet_api.producer import celery_app, publish
from taskfleet_api.schemas import JobStatus

log = logging.getLogger("taskfleet.api.outbox")

#: Longest the status lookup waits for the database before answering as if the job were unknown.
LOOKUP_TIMEOUT_SECONDS = 3.0
#: What a job still in the outbox says in its status's ``progress``.
NOT_YET_PUBLISHED = "not yet published"


class FleetPublisher:
    """Publishes outbox rows as ``POST /api/v1/jobs`` publishes jobs (one producer connection per batch)."""

    @contextmanager
    def connect(self) -> Iterator[Send]:
        app = celery_app()
        with app.producer_or_acquire() as producer:

            def send(message: Pending) -> None:
                # with its job record (GET /api/v1/jobs/{id} answers), in the publish's round trip; the listing's
                # index (joblog) stays the jobs submitted by POST /api/v1/jobs and DLQ replays (docs/outbox.md)
                publish(message.task, message.queue, message.kwargs, job_id=message.job_id, producer=producer)

            yield send


def relay(url: str | None = None) -> Relay:
    return Relay(url or load(DataSettings).database_url, FleetPublisher())


_lookup_engine: AsyncEngine | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global _lookup_engine
    thread = RelayThread(relay()).start() if load(OutboxSettings).outbox_relay_enabled else None
    try:
        yield
    finally:
        if thread is not None:
            await asyncio.to_thread(thread.stop)
        if _lookup_engine is not None:
            await _lookup_engine.dispose()
            _lookup_engine = None


router = APIRouter(lifespan=lifespan)


async def _waiting(job_id: str) -> Any:
    global _lookup_engine
    async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):  # a database that is away must not hold up a 404
        if _lookup_engine is None:
            _lookup_engine = await migrated_engine(load(DataSettings).database_url)
        query = select(OutboxMessage.task, OutboxMessage.queue, OutboxMessage.created_at).where(
            OutboxMessage.job_id == job_id, OutboxMessage.sent_at.is_(None)
        )
        async with _lookup_engine.connect() as connection:
            return (await connection.execute(query)).first()


def waiting_status(job_id: str) -> JobStatus | None:
    """The status of a job committed to the outbox and not yet published; None if there is no such job.

    Called from a sync endpoint (a worker thread of the app's loop): the query runs on the app's loop. A database
    that is away answers None (the caller's 404), as before the outbox existed.
    """
    try:
        uuid.UUID(job_id)  # outbox job ids are UUIDs: anything else is not worth a query
        row = anyio.from_thread.run(_waiting, job_id)
    except Exception as exc:
        if not isinstance(exc, ValueError):
            log.warning("outbox lookup of %s failed: %s", job_id, exc)
        return None
    if row is None:
        return None
    return JobStatus(
        id=job_id,
        task=row.task,
        queue=row.queue,
        state="PENDING",
        submitted_at=row.created_at.isoformat(),
        progress={"message": NOT_YET_PUBLISHED},
    )


def main(argv: list[str] | None = None) -> None:
    """A relay as its own process: SIGTERM/SIGINT finish the current pass, then exit."""
    parser = argparse.ArgumentParser(prog="python -m taskfleet_api.outbox", description=main.__doc__)
    parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics on this port (0: off)")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logs.configure("taskfleet-outbox-relay")
    if options.metrics_port:
        metrics.serve(options.metrics_port, "0.0.0.0")
    worker = relay()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
