"""In-flight work is countable per queue, under the very key the queue's ScaledObject reads, and scale-in
(the kubelet's SIGTERM to PID 1) drains it: the running task finishes, is acked, and nothing is requeued.
"""

from __future__ import annotations

import signal
import time

import redis
from taskfleet_core.tasks.queues import QUEUES

from tests.chart.render import by_name, render_scenario
from tests.runtime_k8s.conftest import wait_for


def running_trigger_key(queue: str) -> str:
    scaled = by_name(render_scenario("default"), "ScaledObject")[f"tf-taskfleet-worker-{queue}"]
    (trigger,) = [t for t in scaled["spec"]["triggers"] if t["name"] == "running"]
    return trigger["metadata"]["listName"]


def test_running_work_counts_in_its_own_queue_and_sigterm_drains_it(
    worker_factory, k8s_env, db: redis.Redis, producer
) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    key = running_trigger_key("default")
    assert key == QUEUES["default"].unacked_index_key
    worker = worker_factory("default", "--concurrency", "1", env=k8s_env)

    result = producer.send_task("maintenance.canary", kwargs={"sleep_seconds": 3, "steps": 3})
    # Running means a pool child started it (its own state write), not merely fetched: a fetched, unstarted
    # message goes back to the queue on SIGTERM (correctly), so that is not the drain this test proves.
    assert wait_for(lambda: result.state in ("STARTED", "PROGRESS"), timeout=15), "the canary never started"
    # While it runs the list is empty (LLEN alone would say "scale to zero") but the in-flight ZSET counts it.
    assert db.zcard(key) == 1, "the running task is not counted in " + key
    assert db.llen("default") == 0
    for other in QUEUES.values():
        if other.name != "default":
            assert db.zcard(other.unacked_index_key) == 0
            assert db.zcard(running_trigger_key(other.name)) == 0
    assert db.zcard("unacked_index") == 0, "kombu's shared default key stays unused"
    # KEDA's formula for the pool: (waiting + running) / listLength > activation -> the pool stays up.
    assert sum(db.llen(k) for k in QUEUES["default"].waiting_lists()) + db.zcard(key) == 1

    # Scale-in: the kubelet sends SIGTERM to PID 1 (the worker itself, exec-form entrypoint).
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.process is not None
    worker.process.wait(30)
    assert time.monotonic() - started < 30, "drained well inside terminationGracePeriodSeconds"
    assert worker.process.returncode == 0
    assert result.get(timeout=5)["steps"] == 3, "the running task completed during the warm shutdown"
    assert db.zcard(key) == 0, "acked, not left for redelivery"
    assert sum(db.llen(k) for k in QUEUES["default"].waiting_lists()) == 0, "nothing requeued: it ran once"


def test_sigterm_the_moment_work_is_fetched_runs_it_exactly_once(
    worker_factory, k8s_env, db: redis.Redis, producer
) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM lands anywhere between fetch and start: the job either runs in the drain or goes back, never both.

    Celery's prefork shutdown used to discard a job a child already held but whose start the parent had
    not read yet: the task ran *and* its message went back to the queue, and the pod stalled 30 s on the
    child's unread result (tasks/prefork.py). Under load this window is what a scale-in hits.
    """
    key = QUEUES["default"].unacked_index_key
    worker = worker_factory("default", "--concurrency", "1", env=k8s_env)
    result = producer.send_task("maintenance.canary", kwargs={"sleep_seconds": 1, "steps": 1})
    assert wait_for(lambda: db.zcard(key) == 1, timeout=15, interval=0.005), "never fetched"
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.process is not None
    worker.process.wait(60)
    assert time.monotonic() - started < 20, "the drain stalled (a child waited on a result nobody read)"
    requeued = sum(db.llen(k) for k in QUEUES["default"].waiting_lists())
    if result.state == "SUCCESS":
        assert requeued == 0, "it ran in the drain and was requeued as well: it would run twice"
    else:
        assert requeued == 1, f"neither ran nor went back: {result.state}"
        worker_factory("default", "--concurrency", "1", env=k8s_env)
        assert result.get(timeout=30)["steps"] == 1, "the requeued job runs on the next worker"
    assert wait_for(lambda: db.zcard(key) == 0, timeout=10), "acked in the end"


def test_the_scaledobject_lists_are_where_kombu_puts_each_priority(k8s_env, db: redis.Redis, producer) -> None:  # type: ignore[no-untyped-def]
    """Real publishes at every priority land exactly in the lists the email ScaledObject's triggers read."""
    for priority in (0, 3, 6, 9):
        producer.send_task("email.check_deadline_notifications", kwargs={}, priority=priority)
    scaled = by_name(render_scenario("default"), "ScaledObject")["tf-taskfleet-worker-email"]
    waiting = [t for t in scaled["spec"]["triggers"] if t["name"] != "running"]
    counts = {t["name"]: db.llen(t["metadata"]["listName"]) for t in waiting}
    assert counts == {"waiting": 1, "waiting_p3": 1, "waiting_p6": 1, "waiting_p9": 1}
