"""The default queue's worker: maintenance and health tasks (seed 000 ``maintenance_tasks``)."""
