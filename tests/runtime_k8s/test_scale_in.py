"""Scale-in without loss: the SIGTERM the kubelet sends a worker pod drains the running task, then exits."""

from __future__ import annotations

import signal
import time

import redis
from taskfleet_core.queues import QUEUES

from tests.runtime_k8s.conftest import wait_for


def test_sigterm_finishes_the_running_task_before_the_worker_exits(
    worker_factory, k8s_env, db: redis.Redis, producer
) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    spec = QUEUES["default"]
    worker = worker_factory("default", "--concurrency", "1", env=k8s_env)
    result = producer.send_task("maintenance.canary", kwargs={"sleep_seconds": 3, "steps": 3})
    assert wait_for(lambda: db.zcard(spec.unacked_index_key) == 1, timeout=15)

    started = time.monotonic()
    worker.signal(signal.SIGTERM)  # what the kubelet sends PID 1 when KEDA/HPA removes the pod
    assert worker.process is not None
    worker.process.wait(30)
    drained = time.monotonic() - started

    assert result.get(timeout=5)["steps"] == 3, "the running task completed during warm shutdown"
    assert worker.process.returncode == 0
    assert drained < 30, "well inside terminationGracePeriodSeconds"
    assert db.zcard(spec.unacked_index_key) == 0, "acked, not left for redelivery"
    assert sum(db.llen(k) for k in spec.waiting_lists()) == 0, "nothing requeued: it ran exactly once"
    assert "Warm shutdown" in worker.log() or "warm shutdown" in worker.log().lower()
