"""The fleet's shutdown mode: drain. SIGTERM lets running tasks finish; prefetched ones go back to the queue.

Two modes exist for Celery on Kubernetes (reference/keda_celery.md section 3):

* **drain** (chosen): plain SIGTERM to the worker (PID 1, exec form) starts Celery's warm shutdown:
  it stops consuming, finishes every running task, and on closing the connection kombu puts the
  prefetched-but-unstarted messages back at the head of the list. Nothing reruns and nothing is
  cut short, provided the pod gets ``terminationGracePeriodSeconds >= task_time_limit + margin``.
* **requeue**: ``REMAP_SIGTERM=SIGQUIT`` + ``worker_soft_shutdown_timeout``: running tasks are
  cancelled after a short window and redelivered (acks_late). Pods go quickly, but every
  scale-in reruns work and leans on idempotency for every task, which not every side effect has.

KEDA scale-in kills routinely, so the fleet drains: a long grace period costs only a slow pod exit.
The Helm chart's ``workerDefaults`` hold these numbers; ``tests/reliability`` checks they agree.
"""

from __future__ import annotations

from taskfleet_core.tasks.queues import QueueSpec

#: Seconds beyond the hard time limit for the last task's ack, result write and process exit.
GRACE_MARGIN_SECONDS = 30


def grace_period_seconds(spec: QueueSpec) -> int:
    """The smallest ``terminationGracePeriodSeconds`` that never cuts a running task short."""
    return spec.time_limit + GRACE_MARGIN_SECONDS
