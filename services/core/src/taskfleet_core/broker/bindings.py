"""Publishes to a fleet queue never depend on kombu's binding SET: the route is the queue registry.

kombu's Redis transport routes a message through the SET ``_kombu.binding.<exchange>`` (one ``SMEMBERS`` per
publish and per restore) and drops it without an error when the SET is empty. Valkey loses that SET with its
data (FLUSHDB, a restart without AOF, a failover to an empty replica), and a producer caches that it declared
it. The fleet used to check the SET before each publish and re-declare it, but a check and a lookup are two
steps: with the key deleted repeatedly under 2,000 publishes, 1,418 were dropped in the window between them.

Every fleet queue has a direct exchange of its own name and routing key (``QueueSpec.kombu_queue``), so the
route of such a publish is known without asking Valkey: the transport (``broker/transport.py``,
``Channel._lookup``) sends it straight to the queue's list, as kombu does for the anonymous exchange. A publish
to a fleet exchange that matches no queue raises ``Unroutable`` instead of vanishing; other exchanges (Celery's
reply and broadcast exchanges) keep kombu's own routing.
"""

from __future__ import annotations

from kombu.exceptions import KombuError

from taskfleet_core.tasks.queues import QUEUES


class Unroutable(KombuError):
    """A publish to a fleet exchange that no fleet queue is bound to: refused, never silently dropped."""


def fleet_route(exchange: str | None, routing_key: str | None) -> str | None:
    """The fleet queue a direct publish to ``exchange`` with ``routing_key`` lands in, or None when not a fleet's."""
    spec = QUEUES.get(exchange or "")
    if spec is None or routing_key != spec.routing_key:
        return None
    return spec.name


def unroutable(exchange: str, routing_key: str | None) -> Unroutable | None:
    """The error for a publish kombu found no queue for, when the exchange is a fleet queue's (else None)."""
    if exchange not in QUEUES:
        return None
    return Unroutable(
        f"no fleet queue for exchange {exchange!r} with routing key {routing_key!r}: "
        f"queue {exchange!r} takes routing key {QUEUES[exchange].routing_key!r}; message not published"
    )
