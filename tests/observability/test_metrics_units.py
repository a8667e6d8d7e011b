"""Small pieces that the fleet test cannot isolate: dead children, the publish stamp, the exporter's reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from taskfleet_core.broker.keys import DLQ_INDEX_KEY
from taskfleet_core.observability.task_metrics import SENT_AT_HEADER
from taskfleet_queue_exporter.exporter import QueueCollector, oldest_sent_at

CHILD = """
import os, sys
from prometheus_client import Gauge, Counter
g = Gauge("t_active", "a", ["w"], multiprocess_mode="livesum")
c = Counter("t_done", "d", ["w"])
g.labels("x").inc(float(sys.argv[1]))
c.labels("x").inc()
"""


def test_dead_children_leave_live_gauges_but_keep_counters(tmp_path: Path) -> None:
    """A child killed without ``worker_process_shutdown`` (OOM) must not be counted as active forever."""
    from taskfleet_core.observability import metrics

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in ("2", "3"):
        subprocess.run([sys.executable, "-c", CHILD, n], env=env, check=True, timeout=30)
    registry = metrics.multiprocess_registry(tmp_path)
    assert registry.get_sample_value("t_active", {"w": "x"}) is None  # both children gone: no live gauge
    assert registry.get_sample_value("t_done_total", {"w": "x"}) == 2.0  # their counts stay (never go backwards)
    assert not list(tmp_path.glob("gauge_live*"))


def test_the_worker_directory_is_emptied_at_start(tmp_path: Path, monkeypatch) -> None:
    from taskfleet_core.observability import metrics

    stale = tmp_path / "counter_1.db"
    stale.write_bytes(b"old run")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    from prometheus_client import values

    before = values.ValueClass
    try:
        assert metrics.enable_multiprocess(tmp_path / "unused") == tmp_path
        assert not stale.exists()
    finally:
        values.ValueClass = before


def test_oldest_message_stamp_is_read_from_the_kombu_envelope() -> None:
    now = time.time()
    assert oldest_sent_at(json.dumps({"body": "...", "headers": {SENT_AT_HEADER: now}})) == now
    assert oldest_sent_at(json.dumps({"body": "...", "headers": {}})) is None
    assert oldest_sent_at("not json") is None
    assert oldest_sent_at(None) is None


def _clear_email(redis_client: redis.Redis) -> None:
    from taskfleet_core.tasks.queues import QUEUES

    spec = QUEUES["email"]
    redis_client.delete(
        *spec.waiting_lists(), spec.unacked_index_key, DLQ_INDEX_KEY.format(queue="email"), "taskfleet:scheduled:email"
    )


def test_queue_collector_counts_priority_lists_in_flight_and_dlq(redis_client: redis.Redis) -> None:
    _clear_email(redis_client)
    stamp = time.time() - 42
    redis_client.lpush("email", json.dumps({"headers": {SENT_AT_HEADER: stamp}}))
    redis_client.lpush("email", json.dumps({"headers": {SENT_AT_HEADER: time.time()}}))
    redis_client.lpush("email\x06\x163", json.dumps({"headers": {SENT_AT_HEADER: time.time()}}))
    redis_client.zadd("unacked_index:email", {"a": 1, "b": 2})
    redis_client.zadd(DLQ_INDEX_KEY.format(queue="email"), {"x": 1})
    redis_client.zadd("taskfleet:scheduled:email", {"later-1": time.time() + 60, "later-2": time.time() + 90})
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in QueueCollector(redis_client).collect()
        for s in family.samples
    }
    q = (("queue_name", "email"),)
    assert samples[("celery_queue_length", q)] == 3
    assert samples[("taskfleet_queue_length_by_priority", (("priority", "3"), *q))] == 1
    assert samples[("taskfleet_queue_in_flight", q)] == 2
    assert samples[("taskfleet_dlq_length", q)] == 1
    assert samples[("taskfleet_queue_scheduled", q)] == 2  # apart from waiting (3) and in flight (2)
    assert 41 < samples[("taskfleet_queue_oldest_message_age_seconds", q)] < 60
    _clear_email(redis_client)


def test_a_task_republishing_itself_with_the_same_retries_is_a_throttle() -> None:
    """``FleetTask`` defers a rate-limited run by re-publishing it unchanged; a retry bumps ``retries``."""
    from celery import Celery
    from celery._state import _task_stack
    from prometheus_client import REGISTRY
    from taskfleet_core.observability import task_metrics

    app = Celery("throttle-test", set_as_current=False)

    @app.task(name="email.send_email", bind=True)
    def task(self) -> None:  # type: ignore[no-untyped-def]
        pass

    task_metrics.instrument_producer("test")

    def throttled() -> float:
        labels = {"name": "email.send_email", "queue_name": "email"}
        return REGISTRY.get_sample_value("taskfleet_task_throttled_total", labels) or 0.0

    before = throttled()
    task.push_request(id="job-1", retries=2, delivery_info={"routing_key": "email"}, called_directly=False)
    _task_stack.push(task)
    try:
        headers = {"id": "job-1", "retries": 2, "task": "email.send_email"}
        task_metrics._before_publish(sender="email.send_email", headers=headers)
        assert SENT_AT_HEADER in headers
        task_metrics._before_publish(sender="email.send_email", headers={"id": "job-1", "retries": 3})  # a retry
        task_metrics._before_publish(sender="email.send_email", headers={"id": "other", "retries": 2})  # a new job
    finally:
        _task_stack.pop()
        task.pop_request()
    assert throttled() == before + 1


def test_json_log_lines_carry_trace_and_task_ids() -> None:
    import logging

    from opentelemetry.sdk.trace import TracerProvider
    from taskfleet_core.observability.logs import JsonFormatter

    record = logging.makeLogRecord({"name": "x", "levelno": 20, "levelname": "INFO", "msg": "hello %s", "args": ("w",)})
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        entry = json.loads(JsonFormatter("svc").format(record))
    assert entry["message"] == "hello w" and entry["service"] == "svc" and entry["level"] == "INFO"
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "task_id" not in entry  # outside a task


def test_the_heartbeat_gauge_is_the_probe_file(tmp_path: Path) -> None:
    """One heartbeat: the gauge reports when the liveness probe's file was refreshed, and nothing before that."""
    from taskfleet_core.observability import metrics, probes

    path = probes.heartbeat_path(probes.worker_probe_name("default"), tmp_path)
    registry = metrics.CollectorRegistry()
    registry.register(metrics.HeartbeatCollector(path, "default@pod-a", "default"))
    labels = {"hostname": "default@pod-a", "queue_name": "default"}
    assert registry.get_sample_value("taskfleet_worker_heartbeat_timestamp_seconds", labels) is None
    probes.touch(path)
    assert registry.get_sample_value("taskfleet_worker_heartbeat_timestamp_seconds", labels) == path.stat().st_mtime


def test_json_log_lines_render_exceptions_stack_info_and_extras() -> None:
    import logging

    from taskfleet_core.observability.logs import JsonFormatter

    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        exc_info = sys.exc_info()
    record = logging.getLogger("x").makeRecord(
        "x", logging.ERROR, __file__, 1, "failed", (), exc_info, extra={"job": 3, "thing": object()}, sinfo="Stack..."
    )
    entry = json.loads(JsonFormatter("svc").format(record))
    assert entry["level"] == "ERROR" and entry["logger"] == "x" and entry["pid"] == os.getpid() and entry["ts"]
    assert "ZeroDivisionError: boom" in entry["exception"] and entry["stack_info"] == "Stack..."
    assert entry["job"] == 3 and entry["thing"].startswith("<object")
