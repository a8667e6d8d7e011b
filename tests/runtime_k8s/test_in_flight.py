"""In-flight work is countable per queue, under the very key the queue's ScaledObject reads."""

from __future__ import annotations

import redis
from taskfleet_core.queues import QUEUES

from tests.chart.render import by_name, render_scenario
from tests.runtime_k8s.conftest import wait_for


def running_trigger_key(queue: str) -> str:
    scaled = by_name(render_scenario("default"), "ScaledObject")[f"tf-taskfleet-worker-{queue}"]
    (trigger,) = [t for t in scaled["spec"]["triggers"] if t["name"] == "running"]
    return trigger["metadata"]["listName"]


def test_a_running_task_counts_in_its_own_queue_only(worker_factory, k8s_env, db: redis.Redis, producer) -> None:  # type: ignore[no-untyped-def]
    key = running_trigger_key("default")
    assert key == QUEUES["default"].unacked_index_key
    worker_factory("default", "--concurrency", "1", env=k8s_env)

    producer.send_task("maintenance.canary", kwargs={"sleep_seconds": 2})
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

    assert wait_for(lambda: db.zcard(key) == 0, timeout=20), "acked work must leave the in-flight count"


def test_the_scaledobject_lists_are_where_kombu_puts_each_priority(k8s_env, db: redis.Redis, producer) -> None:  # type: ignore[no-untyped-def]
    """Real publishes at every priority land exactly in the lists the email ScaledObject's triggers read."""
    for priority in (0, 3, 6, 9):
        producer.send_task("email.check_deadline_notifications", kwargs={}, priority=priority)
    scaled = by_name(render_scenario("default"), "ScaledObject")["tf-taskfleet-worker-email"]
    waiting = [t for t in scaled["spec"]["triggers"] if t["name"] != "running"]
    counts = {t["name"]: db.llen(t["metadata"]["listName"]) for t in waiting}
    assert counts == {"waiting": 1, "waiting_p3": 1, "waiting_p6": 1, "waiting_p9": 1}
