"""Re-create kombu's exchange bindings in Valkey when they are gone, before every publish.

kombu's Redis transport routes a message through the SET ``_kombu.binding.<exchange>``; a
producer declares it once and caches that it did. After Valkey loses data (FLUSHDB, a restart
without AOF, a failover to an empty replica) the SET is gone, the cache still says "declared",
and every publish finds no queue: kombu drops the message without an error. Workers re-declare
only when their own connection restarts, which a FLUSHDB does not cause.

``before_task_publish`` checks the SET (one ``EXISTS``) and re-declares the queue from the
registry when it is missing, so an accepted job always lands in its list.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import before_task_publish

from taskfleet_core.broker.client import client
from taskfleet_core.broker.keys import BINDING_KEY
from taskfleet_core.tasks.queues import QUEUES

log = logging.getLogger("taskfleet.bindings")

_apps: list[Celery] = []


def ensure_binding(app: Celery, exchange: str) -> bool:
    """Declare the registry queue behind ``exchange`` if its binding SET is missing; True if it did."""
    spec = QUEUES.get(exchange)
    if spec is None or client().exists(BINDING_KEY.format(exchange=exchange)):
        return False
    with app.connection_for_write() as connection:
        spec.kombu_queue()(connection.default_channel).declare()
    log.warning("binding of exchange %s was missing (Valkey lost data?); re-declared queue %s", exchange, spec.name)
    return True


def _before_publish(sender: Any = None, exchange: str | None = None, routing_key: str | None = None, **_: Any) -> None:
    if not _apps:
        return
    try:
        ensure_binding(_apps[-1], exchange or routing_key or "")
    except Exception:  # a failing check must not stop the publish; kombu's own retry handles the broker
        log.exception("could not check the binding of exchange %s", exchange)


def install(app: Celery) -> None:
    """Check bindings before every publish of this process's app."""
    _apps.append(app)
    before_task_publish.connect(_before_publish, weak=False, dispatch_uid="taskfleet-ensure-binding")
