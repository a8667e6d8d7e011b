"""The Grafana dashboards, as code: a fleet overview and a per-task drill-down.

Plain dicts in Grafana's dashboard JSON model (schemaVersion 39), built by a few helpers
so every panel has a datasource variable, a unit and a legend. ``generate.py`` writes the
JSON; a test regenerates and diffs it, and the fleet test runs every query against a real
Prometheus. Panels tagged ``kubernetes`` read kube-state-metrics/KEDA series, which exist
only in a cluster.
"""

from __future__ import annotations

from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"
Q = 'queue_name=~"$queue"'
T = 'queue_name=~"$queue", name=~"$task"'


class Layout:
    """Places panels left to right, 24 columns wide, rows of equal height."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> dict[str, int]:
        if self.x + width > 24:
            self.x, self.y = 0, self.y + height
        pos = {"x": self.x, "y": self.y, "w": width, "h": height}
        self.x += width
        return pos

    def row(self, title: str) -> dict[str, Any]:
        if self.x:
            self.x, self.y = 0, self.y + 8
        panel = {
            "type": "row",
            "title": title,
            "id": self._id(),
            "collapsed": False,
            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
            "panels": [],
        }
        self.y += 1
        return panel

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def panel(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        unit: str = "short",
        description: str = "",
        width: int = 8,
        kind: str = "timeseries",
        kubernetes: bool = False,
    ) -> dict[str, Any]:
        panel: dict[str, Any] = {
            "type": kind,
            "title": title,
            "description": description,
            "id": self._id(),
            "datasource": DS,
            "gridPos": self.place(width, 8),
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if kubernetes:
            panel["tags"] = ["kubernetes"]
        return panel


def _datasource_var() -> dict[str, Any]:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}}


def _query_var(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def _dashboard(uid: str, title: str, description: str, variables: list[dict], panels: list[dict]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["taskfleet", "celery"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"title": "Taskfleet", "type": "dashboards", "tags": ["taskfleet"], "asDropdown": True}],
        "panels": panels,
    }


def _quantiles(metric: str, by: str, selector: str, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[tuple[str, str]]:
    label = "{{" + by.split(",")[-1].strip() + "}}"
    return [
        (
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RI}])))",
            f"p{int(q * 100)} {label}",
        )
        for q in qs
    ]


def _ratio(failed: str, succeeded: str, by: str) -> str:
    """failed / (failed + succeeded); 0 instead of no data while nothing failed."""
    f = f"sum by ({by}) (rate({failed}[{RI}]))"
    s = f"sum by ({by}) (rate({succeeded}[{RI}]))"
    return f"({f} or {s} * 0) / clamp_min(({f} or {s} * 0) + {s}, 1e-9)"


def overview() -> dict[str, Any]:
    lay = Layout()
    p = lay.panel
    panels = [
        lay.row("Queues (what KEDA scales on)"),
        p(
            "Waiting",
            [(f"sum by (queue_name) (celery_queue_length{{{Q}}})", "{{queue_name}}")],
            description="Messages in the queue's list and its priority sub-lists.",
        ),
        p(
            "Oldest waiting message",
            [(f"max by (queue_name) (taskfleet_queue_oldest_message_age_seconds{{{Q}}})", "{{queue_name}}")],
            unit="s",
            description="How long the next message has waited.",
        ),
        p(
            "In flight",
            [(f"sum by (queue_name) (taskfleet_queue_in_flight{{{Q}}})", "{{queue_name}}")],
            description="Delivered to a worker, not yet acknowledged (acks_late).",
        ),
        p(
            "Scheduled (delayed, not scaled on)",
            [(f"sum by (queue_name) (taskfleet_queue_scheduled{{{Q}}})", "{{queue_name}}")],
            description="Countdowns, ETAs, retry backoffs and rate-limit deferrals waiting in Valkey's schedule"
            " (taskfleet:scheduled:<queue>) until due; the promoter then moves them to Waiting. KEDA ignores them.",
        ),
        p(
            "Waiting by priority",
            [
                (
                    f"sum by (queue_name, priority) (taskfleet_queue_length_by_priority{{{Q}}})",
                    "{{queue_name}} p{{priority}}",
                )
            ],
        ),
        p("Dead letters", [(f"sum by (queue_name) (taskfleet_dlq_length{{{Q}}})", "{{queue_name}}")]),
        p(
            "Rate-limit throttles",
            [(f"sum by (queue_name) (rate(taskfleet_task_throttled_total{{{Q}}}[{RI}]))", "{{queue_name}}")],
            unit="ops",
            description="Runs deferred by the fleet-wide limit.",
        ),
        lay.row("Throughput and failures"),
        p(
            "Throughput",
            [
                (f"sum by (queue_name) (rate(celery_task_succeeded_total{{{Q}}}[{RI}]))", "succeeded {{queue_name}}"),
                (f"sum by (queue_name) (rate(celery_task_failed_total{{{Q}}}[{RI}]))", "failed {{queue_name}}"),
                (f"sum by (queue_name) (rate(celery_task_retried_total{{{Q}}}[{RI}]))", "retried {{queue_name}}"),
            ],
            unit="ops",
        ),
        p(
            "Failure ratio",
            [
                (
                    _ratio(f"celery_task_failed_total{{{Q}}}", f"celery_task_succeeded_total{{{Q}}}", "queue_name"),
                    "{{queue_name}}",
                )
            ],
            unit="percentunit",
        ),
        p(
            "Retries by reason",
            [
                (
                    f"sum by (queue_name, reason) (increase(taskfleet_task_retries_total{{{Q}}}[$__range]))",
                    "{{queue_name}} {{reason}}",
                )
            ],
            kind="bargauge",
            description="Over the time range.",
        ),
        lay.row("Latency"),
        p("Runtime", _quantiles("celery_task_runtime", "queue_name", Q), unit="s", width=12),
        p(
            "Wait (publish or ETA to start)",
            _quantiles("celery_task_queue_wait_time", "queue_name", Q),
            unit="s",
            width=12,
        ),
        lay.row("Capacity"),
        p(
            "Consuming workers and processes",
            [
                (f"sum by (queue_name) (celery_active_worker_count{{{Q}}})", "workers {{queue_name}}"),
                (f"sum by (queue_name) (celery_active_process_count{{{Q}}})", "processes {{queue_name}}"),
            ],
        ),
        p("Tasks running per worker", [("sum by (hostname) (celery_worker_tasks_active)", "{{hostname}}")]),
        p(
            "Worker heartbeat age",
            [(f"time() - max by (hostname) (taskfleet_worker_heartbeat_timestamp_seconds{{{Q}}})", "{{hostname}}")],
            unit="s",
            description="Refreshed by each worker's event loop.",
        ),
        p(
            "Replicas",
            [
                (
                    'sum by (deployment) (kube_deployment_status_replicas_available{deployment=~".*worker-($queue)"})',
                    "available {{deployment}}",
                ),
                (
                    'sum by (deployment) (kube_deployment_spec_replicas{deployment=~".*worker-($queue)"})',
                    "desired {{deployment}}",
                ),
            ],
            kubernetes=True,
            description="kube-state-metrics.",
        ),
        p(
            "KEDA target",
            [
                (
                    'sum by (scaledObject) (keda_scaler_metrics_value{scaledObject=~".*worker-($queue)"})',
                    "metric {{scaledObject}}",
                ),
                (
                    "max by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_spec_max_replicas"
                    '{horizontalpodautoscaler=~"keda-hpa-.*worker-($queue)"})',
                    "max {{horizontalpodautoscaler}}",
                ),
            ],
            kubernetes=True,
            description="What KEDA reads and the HPA's ceiling.",
        ),
        p(
            "Drain time",
            [
                (
                    f"sum by (queue_name) (celery_queue_length{{{Q}}}) / clamp_min(sum by (queue_name) "
                    f"(rate(celery_task_started_total{{{Q}}}[5m])), 0.001)",
                    "{{queue_name}}",
                )
            ],
            unit="s",
            description="Backlog / start rate: how long the waiting work takes at the current pace.",
        ),
        lay.row("Beat"),
        p(
            "Beat sends per entry",
            [("sum by (entry) (increase(taskfleet_beat_sends_total[$__range]))", "{{entry}}")],
            kind="bargauge",
            width=8,
        ),
        p(
            "Next send due in",
            [("max by (entry) (taskfleet_beat_next_send_timestamp_seconds) - time()", "{{entry}}")],
            unit="s",
            width=8,
            description="Negative = Beat missed the entry.",
        ),
        p(
            "Beat runs missed per entry",
            [("max by (entry) (increase(taskfleet_beat_missed_total[$__range]))", "{{entry}}")],
            kind="bargauge",
            width=8,
            description="Due times no Beat sent: older than the entry's catch-up window when a leader came "
            "(alert TaskfleetBeatMissedRuns). Run those tasks by hand if the work is needed.",
        ),
        lay.row("API"),
        p(
            "Requests by route",
            [(f"sum by (route) (rate(taskfleet_http_requests_total[{RI}]))", "{{route}}")],
            unit="reqps",
        ),
        p(
            "Latency p95 by route",
            [
                (
                    f"histogram_quantile(0.95, sum by (le, route) "
                    f"(rate(taskfleet_http_request_duration_seconds_bucket[{RI}])))",
                    "{{route}}",
                )
            ],
            unit="s",
        ),
        p(
            "Server errors by route",
            [
                (
                    _ratio(
                        'taskfleet_http_requests_total{status=~"5.."}',
                        'taskfleet_http_requests_total{status!~"5.."}',
                        "route",
                    ),
                    "{{route}}",
                )
            ],
            unit="percentunit",
            description="5xx / all requests.",
        ),
        p(
            "Client errors by route",
            [
                (
                    f'sum by (route, status) (rate(taskfleet_http_requests_total{{status=~"4.."}}[{RI}]))',
                    "{{route}} {{status}}",
                )
            ],
            unit="reqps",
        ),
        p(
            "Jobs submitted",
            [
                (
                    f"sum by (name, queue_name) (rate(taskfleet_jobs_submitted_total{{{Q}}}[{RI}]))",
                    "{{queue_name}} {{name}}",
                )
            ],
            unit="ops",
            width=16,
        ),
    ]
    variables = [_datasource_var(), _query_var("queue", "Queue", "label_values(celery_queue_length, queue_name)")]
    return _dashboard(
        "taskfleet-overview",
        "Taskfleet / Fleet overview",
        "Per queue: backlog, age, throughput, failures, latency, capacity; Beat and the API.",
        variables,
        panels,
    )


def task_drilldown() -> dict[str, Any]:
    lay = Layout()
    p = lay.panel
    panels = [
        lay.row("Lifecycle"),
        p(
            "Events",
            [
                (f"sum by (name) (rate(celery_task_started_total{{{T}}}[{RI}]))", "started {{name}}"),
                (f"sum by (name) (rate(celery_task_succeeded_total{{{T}}}[{RI}]))", "succeeded {{name}}"),
                (f"sum by (name) (rate(celery_task_failed_total{{{T}}}[{RI}]))", "failed {{name}}"),
                (f"sum by (name) (rate(celery_task_retried_total{{{T}}}[{RI}]))", "retried {{name}}"),
            ],
            unit="ops",
            width=12,
        ),
        p(
            "Failure ratio",
            [(_ratio(f"celery_task_failed_total{{{T}}}", f"celery_task_succeeded_total{{{T}}}", "name"), "{{name}}")],
            unit="percentunit",
            width=12,
        ),
        p(
            "Published by",
            [(f"sum by (name, hostname) (rate(celery_task_sent_total{{{T}}}[{RI}]))", "{{hostname}} {{name}}")],
            unit="ops",
        ),
        p(
            "Failures by exception",
            [
                (
                    f"sum by (name, exception) (increase(celery_task_failed_total{{{T}}}[$__range]))",
                    "{{name}} {{exception}}",
                )
            ],
            kind="bargauge",
        ),
        p(
            "Retries by reason",
            [
                (
                    f"sum by (name, reason) (increase(taskfleet_task_retries_total{{{T}}}[$__range]))",
                    "{{name}} {{reason}}",
                )
            ],
            kind="bargauge",
        ),
        lay.row("Latency"),
        p("Runtime", _quantiles("celery_task_runtime", "name", T), unit="s", width=12),
        p("Wait", _quantiles("celery_task_queue_wait_time", "name", T), unit="s", width=12),
        lay.row("Other outcomes"),
        p(
            "Throttled by rate limit",
            [(f"sum by (name) (increase(taskfleet_task_throttled_total{{{T}}}[$__range]))", "{{name}}")],
            kind="bargauge",
        ),
        p(
            "Revoked",
            [(f"sum by (name) (increase(celery_task_revoked_total{{{T}}}[$__range]))", "{{name}}")],
            kind="bargauge",
        ),
        p(
            "Rejected",
            [(f"sum by (name) (increase(celery_task_rejected_total{{{T}}}[$__range]))", "{{name}}")],
            kind="bargauge",
        ),
    ]
    variables = [
        _datasource_var(),
        _query_var("queue", "Queue", "label_values(celery_task_started_total, queue_name)"),
        _query_var("task", "Task", 'label_values(celery_task_started_total{queue_name=~"$queue"}, name)'),
    ]
    return _dashboard(
        "taskfleet-task",
        "Taskfleet / Task drill-down",
        "One task (or several): events, failure ratio, exceptions, retries, runtime and wait.",
        variables,
        panels,
    )


DASHBOARDS = {"taskfleet-overview.json": overview, "taskfleet-task.json": task_drilldown}


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(panel title, expr, needs kubernetes) for every target of every panel."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"], "kubernetes" in panel.get("tags", [])))
    return out
