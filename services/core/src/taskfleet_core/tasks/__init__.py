"""Tasks: the queue registry, the task contracts (wire name, queue, argument model), the Celery app factory,
``FleetTask`` (the base class every task runs under), a worker's entry point and the async bridge."""
