"""The relay: publishes committed outbox rows to their queues with the job id fixed at enqueue, marks them sent.

One pass = claim, publish, mark:

1. **claim** up to ``OUTBOX_BATCH_SIZE`` waiting rows in one short transaction: a conditional UPDATE writes
   this pass's token and a lease on rows that are unsent and unclaimed (or whose lease ran out). On PostgreSQL
   the candidate rows are selected ``FOR UPDATE SKIP LOCKED``, so concurrent relays take disjoint rows without
   waiting on each other; SQLite runs one writer at a time, so the UPDATE alone is the claim. No transaction is
   open while the broker is talked to.
2. **publish** each row through the ``Publisher`` (the fleet's producer path: ``send_task`` with the row's job
   id and the job record the status API reads), in id order.
3. **mark** the published rows sent (only those still carrying this pass's token) and release the others; a
   failed publish (broker away) counts an attempt and the relay backs off (0.1 s doubling to 5 s) and retries.

A relay that dies between 2 and 3 leaves its rows claimed until the lease ends (``OUTBOX_LEASE_SECONDS``);
then any relay publishes them again under the same job ids: at most a duplicate delivery, absorbed by the
workers' idempotency. Relays wake on commits of their own process (``enqueue.on_commit``) and, on PostgreSQL,
on ``NOTIFY`` from any process; ``OUTBOX_POLL_SECONDS`` polling is the fallback. Sent rows are pruned after
``OUTBOX_RETENTION_SECONDS``; backlog and oldest age are exported per queue (``outbox.metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from taskfleet_core.settings import load
from taskfleet_core.tasks.queues import QUEUES

from taskfleet_data.db import migrated_engine
from taskfleet_data.models import utcnow
from taskfleet_data.outbox import metrics
from taskfleet_data.outbox.enqueue import CHANNEL, on_commit
from taskfleet_data.outbox.model import OutboxMessage
from taskfleet_data.outbox.settings import OutboxSettings

log = logging.getLogger(__name__)

OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]  # a Table, typed as its base
#: Backoff after a failed pass (broker or database away): doubling from the first to the last.
BACKOFF_SECONDS = (0.1, 5.0)
#: Gauges are refreshed and sent rows pruned at most this often.
GAUGE_SECONDS = 1.0
PRUNE_SECONDS = 60.0
#: Rows deleted per prune statement (a large backlog of sent rows is pruned over several passes).
PRUNE_BATCH = 5000


@dataclass(frozen=True)
class Pending:
    """A claimed row, as the publisher needs it."""

    id: int
    job_id: str
    task: str
    queue: str
    kwargs: dict[str, Any]
    created_at: datetime


Send = Callable[[Pending], None]


class Publisher(Protocol):
    def connect(self) -> AbstractContextManager[Send]:
        """A ``send(message)`` for one batch (one broker connection); ``send`` raises when the broker is away."""


class Relay:
    def __init__(
        self, url: str, publisher: Publisher, settings: OutboxSettings | None = None, *, wake_on_commit: bool = True
    ) -> None:
        """``wake_on_commit=False`` leaves only NOTIFY and polling (the bench measures each path alone)."""
        self.url = url
        self.wake_on_commit = wake_on_commit
        self.publisher = publisher
        self.settings = settings or load(OutboxSettings)
        self.name = f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._claims = itertools.count()
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._listener: AsyncConnection | None = None
        self._listener_driver: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._stopping = False
        self._opening: asyncio.Task[Any] | None = None
        self._next_gauges = 0.0
        self._next_prune = 0.0

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """The engine on the (migrated) database; ``run`` calls it, tests driving ``pass_once`` do too."""
        if self._engine is None:
            self._engine = await migrated_engine(self.url)
            self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    async def _ready(self) -> async_sessionmaker[AsyncSession]:
        await self.open()
        assert self._sessions is not None
        return self._sessions

    async def close(self) -> None:
        await self._unlisten()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._sessions = None

    async def run(self) -> None:
        """Relay until ``stop()``: wake on commits and notifications, poll as a fallback, back off on failures."""
        self._loop = asyncio.get_running_loop()
        self._wake, self._stopped = asyncio.Event(), asyncio.Event()
        unregister = on_commit(self.wake) if self.wake_on_commit else (lambda: None)
        backoff = BACKOFF_SECONDS[0]
        try:
            while not self._stopping and self._engine is None:
                try:
                    self._opening = asyncio.current_task()
                    await self.open()
                except Exception as exc:  # database down or not migrated yet: keep trying
                    log.warning("outbox relay: database not reachable (%s); retrying in %.1fs", exc, backoff)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_SECONDS[1])
                finally:
                    self._opening = None
            log.info("outbox relay %s running (poll %.2fs)", self.name, self.settings.outbox_poll_seconds)
            while not self._stopping:
                self._wake.clear()  # before the pass: a commit during the pass makes the next one start at once
                try:
                    await self._listen()
                    sent, failed = await self.pass_once()
                    await self.housekeeping()
                except Exception as exc:
                    log.warning("outbox relay pass failed: %s", exc)
                    sent, failed = 0, True
                if failed:
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_SECONDS[1])
                    continue
                backoff = BACKOFF_SECONDS[0]
                if sent < self.settings.outbox_batch_size:
                    await _wait(self._wake, self.settings.outbox_poll_seconds)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            unregister()
            await self.close()
            log.info("outbox relay %s stopped", self.name)

    def wake(self) -> None:
        """Thread-safe: run a pass now (a commit enqueued)."""
        self._call_in_loop(lambda: self._wake.set() if self._wake else None)

    def stop(self) -> None:
        """Thread-safe: finish the current pass, then stop (an open still waiting for the database is cancelled)."""
        self._stopping = True

        def wake_all() -> None:
            for event in (self._wake, self._stopped):
                if event is not None:
                    event.set()
            if self._opening is not None:
                self._opening.cancel()

        self._call_in_loop(wake_all)

    def _call_in_loop(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(callback)

    async def _sleep(self, seconds: float) -> None:
        if self._stopped is not None:
            await _wait(self._stopped, seconds)
        else:
            await asyncio.sleep(seconds)

    # -- one pass -------------------------------------------------------------------------------------------

    async def pass_once(self) -> tuple[int, bool]:
        """Claim, publish, mark: (rows published, whether a publish failed)."""
        token = f"{self.name}#{next(self._claims)}"
        batch = await self.claim(token)
        if not batch:
            return 0, False
        sent, error = self.publish(batch)
        failed = batch[len(sent)] if error is not None else None
        await self.mark(token, sent, batch[len(sent) :], failed, error)
        if error is not None:
            metrics.PUBLISH_ERRORS.labels(failed.queue if failed else "").inc()
            log.warning("outbox: publish of %s failed (%s); %d row(s) wait", failed, error, len(batch) - len(sent))
        return len(sent), error is not None

    async def claim(self, token: str) -> list[Pending]:
        sessions = await self._ready()
        now = utcnow()
        candidates = (
            select(OUTBOX.c.id)
            .where(OUTBOX.c.sent_at.is_(None), or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < now))
            .order_by(OUTBOX.c.id)
            .limit(self.settings.outbox_batch_size)
            .with_for_update(skip_locked=True)  # PostgreSQL: concurrent relays skip each other's rows
        )
        claim = (
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(candidates))
            .values(claimed_by=token, claimed_until=now + timedelta(seconds=self.settings.outbox_lease_seconds))
            .returning(
                OUTBOX.c.id, OUTBOX.c.job_id, OUTBOX.c.task, OUTBOX.c.queue, OUTBOX.c.kwargs, OUTBOX.c.created_at
            )
        )
        async with sessions() as session, session.begin():
            rows = (await session.execute(claim)).all()
        return sorted((Pending(*row) for row in rows), key=lambda p: p.id)

    def publish(self, batch: Sequence[Pending]) -> tuple[list[Pending], Exception | None]:
        """Publish in order until one fails: (the published ones, the error)."""
        sent: list[Pending] = []
        try:
            with self.publisher.connect() as send:
                for message in batch:
                    send(message)
                    sent.append(message)
        except Exception as exc:
            return sent, exc
        return sent, None

    async def mark(
        self,
        token: str,
        sent: Sequence[Pending],
        unsent: Sequence[Pending],
        failed: Pending | None,
        error: Exception | None,
    ) -> None:
        sessions = await self._ready()
        now = utcnow()
        mine = OUTBOX.c.claimed_by == token
        async with sessions() as session, session.begin():
            if sent:
                await session.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id.in_([m.id for m in sent]), mine)
                    .values(sent_at=now, claimed_by=None, claimed_until=None)
                )
            if unsent:
                await session.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id.in_([m.id for m in unsent]), mine)
                    .values(claimed_by=None, claimed_until=None)
                )
            if failed is not None:
                await session.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id == failed.id)
                    .values(attempts=OUTBOX.c.attempts + 1, last_error=str(error)[:2000])
                )
        for message in sent:
            metrics.PUBLISHED.labels(message.queue).inc()
            metrics.LATENCY.labels(message.queue).observe(max(0.0, (now - message.created_at).total_seconds()))

    # -- housekeeping ---------------------------------------------------------------------------------------

    async def housekeeping(self, *, force: bool = False) -> None:
        """Refresh the backlog gauges (each second) and prune sent rows (each minute)."""
        clock = time.monotonic()
        if force or clock >= self._next_gauges:
            self._next_gauges = clock + GAUGE_SECONDS
            await self.refresh_gauges()
        if force or clock >= self._next_prune:
            self._next_prune = clock + PRUNE_SECONDS
            await self.prune()

    async def backlog(self) -> dict[str, tuple[int, datetime]]:
        """Per queue: rows waiting and the oldest one's enqueue time."""
        sessions = await self._ready()
        query = (
            select(OUTBOX.c.queue, func.count(), func.min(OUTBOX.c.created_at))
            .where(OUTBOX.c.sent_at.is_(None))
            .group_by(OUTBOX.c.queue)
        )
        async with sessions() as session:
            return {queue: (count, oldest) for queue, count, oldest in (await session.execute(query)).all()}

    async def refresh_gauges(self) -> None:
        waiting = await self.backlog()
        now = utcnow()
        for queue in {*QUEUES, *waiting}:
            count, oldest = waiting.get(queue, (0, now))
            metrics.BACKLOG.labels(queue).set(count)
            metrics.OLDEST_AGE.labels(queue).set(max(0.0, (now - oldest).total_seconds()))

    async def prune(self) -> int:
        """Delete rows sent more than ``OUTBOX_RETENTION_SECONDS`` ago; how many."""
        sessions = await self._ready()
        cutoff = utcnow() - timedelta(seconds=self.settings.outbox_retention_seconds)
        old = select(OUTBOX.c.id).where(OUTBOX.c.sent_at < cutoff).limit(PRUNE_BATCH)
        async with sessions() as session, session.begin():
            result = await session.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(old)))
        pruned = int(getattr(result, "rowcount", 0) or 0)
        if pruned:
            log.info("outbox: pruned %d sent row(s)", pruned)
        return pruned

    # -- PostgreSQL LISTEN ----------------------------------------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN on PostgreSQL (reconnected whenever the connection was lost); nothing on SQLite."""
        if self._engine is None or self._engine.dialect.name != "postgresql":
            return
        if self._listener_driver is not None and not self._listener_driver.is_closed():
            return
        await self._unlisten()
        connection = await self._engine.connect()
        try:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.add_listener(CHANNEL, self._notified)
        except BaseException:
            await connection.close()
            raise
        self._listener, self._listener_driver = connection, driver

    def _notified(self, *_: Any) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _unlisten(self) -> None:
        connection, self._listener, self._listener_driver = self._listener, None, None
        if connection is not None:
            try:
                await connection.invalidate()  # never back to the pool with a LISTEN on it
                await connection.close()
            except Exception as exc:
                log.debug("outbox: closing the LISTEN connection: %s", exc)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass


class RelayThread:
    """A relay on its own thread and event loop: how the API runs one next to its requests."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.thread = threading.Thread(target=self._main, name="outbox-relay", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self.relay.run())
        except Exception:
            log.exception("outbox relay thread ended")

    def start(self) -> RelayThread:
        self.thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self.relay.stop()
        self.thread.join(timeout)
