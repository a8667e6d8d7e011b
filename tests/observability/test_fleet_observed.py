"""The proof: a real fleet under mixed load, watched by a real Prometheus and an OTLP sink.

* every dashboard panel query returns data through Prometheus' HTTP API (panels that read
  kube-state-metrics/KEDA series are listed as skipped: no cluster here);
* the failure-ratio alert fires (and the no-consumer alert, for a queue nobody consumes);
* one trace runs from ``POST /api/v1/jobs`` through the broker into the worker's task span
  and its Redis child spans; the worker's JSON log lines carry that trace id and the task id.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator

import pytest

from tests.observability.conftest import Fleet, infra_module, log_lines

pytestmark = pytest.mark.slow

CANARY = "maintenance.canary"
#: Grafana's variables, as a query against this short-lived Prometheus sees them.
GRAFANA_VARIABLES = {"$__rate_interval": "20s", "$__range": "5m", "$queue": ".*", "$task": ".*"}


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def mixed_wave(fleet: Fleet, *, slow: bool) -> list[str]:
    """Successes, retries (transient failures, then success), permanent failures, bad requests."""
    ids = []
    bodies = (
        [{"kwargs": {"steps": 2, "sleep_seconds": 0.1}}] * 6
        + [{"kwargs": {"fail_attempts": 1}}] * 3
        + [{"kwargs": {"fail_permanently": True}}] * 5
        + ([{"kwargs": {"sleep_seconds": 3}}] if slow else [])
    )
    for body in bodies:
        response = fleet.submit(CANARY, **body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    # work for a queue nobody consumes here: waiting, ageing, no consumer
    assert fleet.submit("matching.calculate_company_matches", kwargs={"company_id": 7}).status_code == 202
    assert fleet.submit(CANARY, kwargs={"steps": 0}).status_code == 422
    assert fleet.submit("no.such_task").status_code == 404
    return ids


@pytest.fixture
def steady_load(fleet: Fleet) -> Iterator[None]:
    """Keeps rates non-zero while the panels are checked: a success every 0.3 s, a failure every 1.5 s."""
    stop = threading.Event()

    def run() -> None:
        n = 0
        deadline = time.monotonic() + 90  # bounded even if the test hangs
        while not stop.is_set() and time.monotonic() < deadline:
            body = {"fail_permanently": True} if n % 5 == 4 else {"steps": 1}
            fleet.submit(CANARY, kwargs=body)
            n += 1
            stop.wait(0.3)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(10)


def has_data(result: list[dict]) -> bool:
    return any(not math.isnan(float(series["value"][1])) for series in result)


def test_every_dashboard_panel_has_data_and_alerts_fire(fleet: Fleet, steady_load: None) -> None:
    prometheus = fleet.prometheus
    first = mixed_wave(fleet, slow=True)
    # the second wave lands after Prometheus has seen the first: counters born at 1 are not an increase
    deadline = time.monotonic() + 30
    while not prometheus.query("sum(celery_task_failed_total) > 0") and time.monotonic() < deadline:
        time.sleep(0.5)
    mixed_wave(fleet, slow=False)
    assert fleet.wait_job(first[-1])["state"] == "SUCCESS"  # the slow one

    dashboards = infra_module("dashboards")
    pending: dict[tuple[str, str, str], str] = {}
    skipped = []
    for file, build in dashboards.DASHBOARDS.items():
        for title, expr, kubernetes in dashboards.panel_queries(build()):
            if kubernetes:
                skipped.append(title)
            else:
                pending[(file, title, expr)] = grafana_to_promql(expr)
    assert skipped == ["Replicas", "Replicas", "KEDA target", "KEDA target"]

    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for key, promql in list(pending.items()):
            if has_data(prometheus.query(promql)):
                del pending[key]
        time.sleep(1)
    assert not pending, "panels without data:\n" + "\n".join(f"{f} / {t}: {q}" for f, t, q in pending)

    # a few numbers behind the panels, by label
    assert prometheus.query(f'taskfleet_task_retries_total{{name="{CANARY}", reason="TransientError"}} > 0')
    assert prometheus.query(f'celery_task_failed_total{{name="{CANARY}", exception="PermanentError"}} > 0')
    assert prometheus.query(f'taskfleet_jobs_submitted_total{{name="{CANARY}", queue_name="default"}} > 0')
    assert prometheus.query('celery_task_sent_total{hostname="api"} > 0')
    assert prometheus.query('celery_task_sent_total{hostname="worker-default"} > 0')  # the retries
    assert prometheus.query('taskfleet_queue_oldest_message_age_seconds{queue_name="matching"} > 0')
    assert prometheus.query('taskfleet_http_requests_total{route="/api/v1/jobs", status="422"} > 0')
    assert prometheus.query(
        'celery_task_runtime_bucket{le="2.5"} < ignoring(le) celery_task_runtime_count'
    )  # the slow one

    firing = wait_for_alerts(fleet, {"TaskfleetTaskHighFailureRatio", "TaskfleetQueueNoConsumers"})
    ratio = firing["TaskfleetTaskHighFailureRatio"]
    assert ratio["labels"]["name"] == CANARY and ratio["labels"]["queue_name"] == "default"
    assert firing["TaskfleetQueueNoConsumers"]["labels"]["queue_name"] == "matching", "the only queue left unconsumed"
    quiet = {a["labels"]["alertname"] for a in prometheus.alerts() if a["state"] == "firing"}
    assert not quiet & {"TaskfleetBeatDown", "TaskfleetQueueMetricsAbsent", "TaskfleetWorkerHeartbeatLost"}


def wait_for_alerts(fleet: Fleet, names: set[str], timeout: float = 30) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        firing = {a["labels"]["alertname"]: a for a in fleet.prometheus.alerts() if a["state"] == "firing"}
        if names <= firing.keys() or time.monotonic() > deadline:
            assert names <= firing.keys(), f"not firing: {names - firing.keys()}; firing: {sorted(firing)}"
            return firing
        time.sleep(0.5)


def test_trace_runs_from_the_api_into_the_worker(fleet: Fleet) -> None:
    response = fleet.submit(CANARY, kwargs={"steps": 2, "fail_attempts": 1})
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert fleet.wait_job(job_id)["state"] == "SUCCESS"

    sink = fleet.sink
    runs = sink.wait_for(lambda s: s.name == f"run/{CANARY}" and s.attributes.get("taskfleet.task.id") == job_id, 2)
    assert len(runs) == 2, [s.attributes for s in runs]  # the failed attempt and the retry that succeeded
    trace_id = runs[0].trace_id
    spans = {s.span_id: s for s in sink.wait_for(lambda s: s.trace_id == trace_id)}

    server = [s for s in spans.values() if s.service == "taskfleet-api" and s.name == "POST /api/v1/jobs"]
    assert len(server) == 1, sorted(s.name for s in spans.values())

    def ancestors(span_id: str) -> list[str]:
        chain = []
        while span_id in spans:
            chain.append(spans[span_id].name)
            span_id = spans[span_id].parent_id
        return chain

    for run in runs:
        assert run.trace_id == trace_id
        assert run.service == "taskfleet-worker-default"
        assert "POST /api/v1/jobs" in ancestors(run.span_id)
        assert run.attributes["taskfleet.task.name"] == CANARY
        assert run.attributes["taskfleet.queue"] == "default"
    assert sorted(r.attributes["taskfleet.task.retries"] for r in runs) == [0, 1]
    publish = [s for s in spans.values() if s.name == f"apply_async/{CANARY}" and s.service == "taskfleet-api"]
    assert publish and publish[0].parent_id == server[0].span_id
    # the task's own Valkey calls (progress, result) are children of the task span
    run_ids = {r.span_id for r in runs}
    redis_children = sink.wait_for(lambda s: s.parent_id in run_ids and s.attributes.get("db.system") == "redis")
    assert redis_children, "no Redis child span under the task span"

    lines = [json.loads(line) for line in log_lines(fleet.worker.log_path) if line.startswith("{")]
    task_lines = [entry for entry in lines if entry.get("task_id") == job_id]
    assert task_lines, "no JSON log line with the task id"
    assert {entry.get("trace_id") for entry in task_lines} == {trace_id}
    assert all(entry["task_name"] == CANARY and entry["queue"] == "default" for entry in task_lines)


def test_task_database_and_valkey_calls_are_child_spans(fleet: Fleet) -> None:
    """``maintenance.health_check`` pings the database (SQLAlchemy) and Valkey inside its task span."""
    response = fleet.submit("maintenance.health_check")
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert fleet.wait_job(job_id)["state"] == "SUCCESS"
    sink = fleet.sink
    (run,) = sink.wait_for(lambda s: s.attributes.get("taskfleet.task.id") == job_id)
    spans = {s.span_id: s for s in sink.wait_for(lambda s: s.trace_id == run.trace_id, count=4)}

    def under_run(span) -> bool:  # type: ignore[no-untyped-def]
        while span.parent_id in spans:
            span = spans[span.parent_id]
            if span.span_id == run.span_id:
                return True
        return False

    systems = {s.attributes.get("db.system") for s in spans.values() if under_run(s)}
    assert {"redis", "sqlite"} <= systems, systems
