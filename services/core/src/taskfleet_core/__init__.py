"""Taskfleet core: the fleet runtime every service shares, one subpackage per concern.

* ``broker``: the Valkey client, kombu's transport with its guards, the key catalogue, queue depths;
* ``tasks``: the queue registry, task contracts, the Celery app factory, ``FleetTask``, the worker entry point,
  the async bridge and the two kinds of failure;
* ``reliability``: the fleet-wide rate limiter, locks, idempotency, the dead-letter queue, the message guard,
  the shutdown mode;
* ``observability``: metrics, task signals, tracing, logs and the liveness/readiness probes.

``settings`` holds the environment each concern reads. Domain data (database, models, migrations, search,
embeddings) is not here: it is the ``taskfleet-data`` package, installed only by the services that use it.
"""
