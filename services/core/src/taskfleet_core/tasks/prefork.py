"""The worker pool: Celery's prefork pool, minus a warm-shutdown race that runs a task twice.

When a warm shutdown starts, the prefork pool ``flush()``es: every job the parent has not yet seen
a child *accept* is discarded from the pool's cache, on the assumption that the broker will
redeliver it. But "not accepted" only means the parent has not read the child's acceptance
message yet: a job already written to a child's pipe runs all the same. Under CPU load that
window is wide (a SIGTERM arriving just as a task starts hits it), and then

* the task runs in the child while its message goes back to the queue and runs again, and
* the child, finished, waits 30 s for the parent to read its result (billiard's
  ``_ensure_messages_consumed``) before it exits, so the pod's drain stalls.

(Upstream: celery#3802, kombu#925.) A job handed to a live child is therefore kept like an
accepted one: the shutdown waits for its result and acks it, exactly as for any running task.
Jobs not yet written to a child are still discarded, so they go back to the queue unrun.
"""

from __future__ import annotations

from celery.concurrency import asynpool, prefork


class DrainingAsynPool(asynpool.AsynPool):
    """``AsynPool`` whose shutdown flush keeps every job that a live child already holds."""

    def flush(self) -> None:
        for job in tuple(self._cache.values()):  # type: ignore[attr-defined]  # billiard's Pool, untyped
            child = job._write_to  # set once the parent starts writing the job to that child
            if not job._accepted and child is not None and child._is_alive():
                job._accepted = True  # it will run: wait for its result instead of redelivering it
        super().flush()


class DrainingTaskPool(prefork.TaskPool):
    """The fleet's ``worker_pool``: prefork with :class:`DrainingAsynPool`."""

    Pool = DrainingAsynPool


#: The value for Celery's ``worker_pool`` setting.
WORKER_POOL = f"{__name__}:{DrainingTaskPool.__name__}"
