"""``enqueue_in``: ask for a job inside a transaction; it is published only if that transaction commits.

Two wake-ups make the relay publish within milliseconds of the commit, polling being only the fallback:

* in this process, SQLAlchemy's ``after_commit`` event of the session that enqueued calls every relay
  registered with ``on_commit`` (the API's own relay thread);
* on PostgreSQL, ``pg_notify`` inside the transaction: PostgreSQL delivers it at commit (never after a
  rollback) to every relay LISTENing, in any process.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from taskfleet_core.tasks.contracts import CONTRACTS

from taskfleet_data.models import utcnow
from taskfleet_data.outbox.model import OutboxMessage

log = logging.getLogger(__name__)

#: The PostgreSQL channel relays LISTEN on.
CHANNEL = "taskfleet_outbox"
#: ``session.info`` flags: this transaction enqueued (wake relays at commit) / already notified PostgreSQL.
_ENQUEUED = "taskfleet_outbox_enqueued"
_NOTIFIED = "taskfleet_outbox_notified"

_wakers: set[Callable[[], None]] = set()


class UnknownTask(KeyError):
    """No task contract has this name (the API answers 404 for it)."""


def on_commit(wake: Callable[[], None]) -> Callable[[], None]:
    """Call ``wake()`` after every commit of this process that enqueued; returns the function that unregisters."""
    _wakers.add(wake)
    return lambda: _wakers.discard(wake)


async def enqueue_in(
    session: AsyncSession,
    task: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Validate against ``task``'s contract and add an outbox row to the session's transaction; the job id.

    Raises ``UnknownTask`` for a name without contract and pydantic's ``ValidationError`` (``loc`` names the
    field) for bad arguments, before anything is written. The caller commits (or rolls back) as usual.
    """
    contract = CONTRACTS.get(task)
    if contract is None:
        raise UnknownTask(f"no task contract named {task!r}")
    contract.validate(args, kwargs)
    job_id = str(uuid.uuid4())
    session.add(
        OutboxMessage(
            job_id=job_id,
            task=contract.name,
            queue=contract.queue,
            kwargs=contract.to_kwargs(args, kwargs),
            created_at=utcnow(),
        )
    )
    info = session.sync_session.info
    info[_ENQUEUED] = True
    if session.get_bind().dialect.name == "postgresql" and not info.get(_NOTIFIED):
        await session.execute(select(func.pg_notify(CHANNEL, "")))  # delivered at commit, once per transaction
        info[_NOTIFIED] = True
    return job_id


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    session.info.pop(_NOTIFIED, None)
    if session.info.pop(_ENQUEUED, False):
        for wake in list(_wakers):
            try:
                wake()
            except Exception:  # a relay that is shutting down must not fail the caller's commit
                log.exception("outbox wake-up failed")


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session, *_: Any) -> None:
    session.info.pop(_NOTIFIED, None)
    session.info.pop(_ENQUEUED, None)
