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
    # While it runs the list is empty (LLEN alone would say "scale to zero") but the in-flight ZSET counts it.
    assert wait_for(lambda: db.zcard(key) == 1, timeout=15), "the running task never showed up in " + key
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


def test_the_scaledobject_lists_are_where_kombu_puts_each_priority(k8s_env, db: redis.Redis, producer) -> None:  # type: ignore[no-untyped-def]
    """Real publishes at every priority land exactly in the lists the email ScaledObject's triggers read."""
    for priority in (0, 3, 6, 9):
        producer.send_task("email.check_deadline_notifications", kwargs={}, priority=priority)
    scaled = by_name(render_scenario("default"), "ScaledObject")["tf-taskfleet-worker-email"]
    waiting = [t for t in scaled["spec"]["triggers"] if t["name"] != "running"]
    counts = {t["name"]: db.llen(t["metadata"]["listName"]) for t in waiting}
    assert counts == {"waiting": 1, "waiting_p3": 1, "waiting_p6": 1, "waiting_p9": 1}
