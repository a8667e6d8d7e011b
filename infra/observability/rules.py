"""The fleet's alert rules, as code: one rule group per concern.

Per-queue thresholds come from the queue registry, so a new queue gets its backlog
alert without anyone editing YAML. ``for_override`` builds the copy the fleet test
loads into a real Prometheus (short ``for:`` so an alert fires within seconds).
"""

from __future__ import annotations

from typing import Any

from taskfleet_core.tasks.queues import QUEUES

#: Oldest waiting message older than this pages (seconds). Default: a fifth of the queue's hard time limit.
BACKLOG_AGE_SECONDS = {"default": 300, "matching": 600, "email": 300, "sync": 1800}
#: Failure ratio per task over 10 minutes, with a floor of failures so one bad job does not page.
FAILURE_RATIO = 0.05
MIN_FAILURES = 3
HEARTBEAT_MAX_AGE_SECONDS = 60
BEAT_GRACE_SECONDS = 300
#: A missed Beat run stays an alert this long (the counter is fleet-wide in Valkey, so it never resets).
BEAT_MISSED_WINDOW = "1h"


def backlog_threshold(queue: str) -> int:
    return BACKLOG_AGE_SECONDS.get(queue, QUEUES[queue].time_limit // 5)


def _rule(name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, "service": "taskfleet"},
        "annotations": {"summary": summary, "description": description},
    }


def _failure_ratio() -> dict[str, Any]:
    failed = "sum by (queue_name, name) (increase(celery_task_failed_total[10m]))"
    succeeded = "sum by (queue_name, name) (increase(celery_task_succeeded_total[10m]))"
    expr = f"({failed} / ({failed} + ({succeeded} or {failed} * 0))) > {FAILURE_RATIO}\nand {failed} >= {MIN_FAILURES}"
    return _rule(
        "TaskfleetTaskHighFailureRatio",
        expr,
        "5m",
        "warning",
        "Task {{ $labels.name }} on {{ $labels.queue_name }} fails {{ $value | humanizePercentage }} of runs",
        f"More than {FAILURE_RATIO:.0%} of runs failed for good over 10 minutes (at least {MIN_FAILURES} failures). "
        "See the task drill-down dashboard, failures by exception, and the DLQ.",
    )


def groups() -> list[dict[str, Any]]:
    backlog = [
        _rule(
            "TaskfleetBacklogTooOld",
            f'max by (queue_name) (taskfleet_queue_oldest_message_age_seconds{{queue_name="{q}"}}) > '
            f"{backlog_threshold(q)}",
            "5m",
            "warning",
            "Queue {{ $labels.queue_name }}: the oldest waiting message is {{ $value | humanizeDuration }} old",
            f"Work waits longer than {backlog_threshold(q)} s on {q}: workers are too few (check KEDA's "
            "maxReplicaCount) or stuck.",
        )
        | {"labels": {"severity": "warning", "service": "taskfleet", "queue_name": q}}
        for q in QUEUES
    ]
    return [
        {"name": "taskfleet.tasks", "rules": [_failure_ratio()]},
        {
            "name": "taskfleet.queues",
            "rules": [
                *backlog,
                _rule(
                    "TaskfleetQueueNoConsumers",
                    "(sum by (queue_name) (celery_queue_length) > 0)\n"
                    "and on (queue_name) (sum by (queue_name) (celery_active_worker_count) == 0)",
                    "5m",
                    "critical",
                    "Queue {{ $labels.queue_name }} has waiting work and no worker consuming it",
                    "No worker has consumed this queue for 5 minutes while messages wait: the Deployment is at "
                    "zero and KEDA does not scale it up, or every pod crashes.",
                ),
                _rule(
                    "TaskfleetDeadLettersGrowing",
                    "sum by (queue_name) (delta(taskfleet_dlq_length[15m])) > 0",
                    "1m",
                    "warning",
                    "New dead letters on {{ $labels.queue_name }}",
                    "Jobs the fleet gave up on landed in the DLQ in the last 15 minutes: inspect and replay them "
                    "through the API's DLQ endpoints.",
                ),
                _rule(
                    "TaskfleetQueueMetricsAbsent",
                    "absent(celery_queue_length)",
                    "5m",
                    "warning",
                    "No queue metrics: the queue exporter is down or cannot reach Valkey",
                    "Every backlog alert depends on the queue exporter (python -m taskfleet_queue_exporter).",
                ),
            ],
        },
        {
            "name": "taskfleet.workers",
            "rules": [
                _rule(
                    "TaskfleetWorkerHeartbeatLost",
                    f"time() - max by (hostname, queue_name) (taskfleet_worker_heartbeat_timestamp_seconds) > "
                    f"{HEARTBEAT_MAX_AGE_SECONDS}",
                    "1m",
                    "critical",
                    "Worker {{ $labels.hostname }} stopped its heartbeat",
                    "The worker's event loop has not refreshed its heartbeat file (the one its liveness probe reads) "
                    "for a minute while its metrics endpoint still answers: it is wedged. Its liveness probe should "
                    "restart it.",
                ),
            ],
        },
        {
            "name": "taskfleet.beat",
            "rules": [
                _rule(
                    "TaskfleetBeatMissedSchedule",
                    f"time() - max by (entry) (taskfleet_beat_next_send_timestamp_seconds) > {BEAT_GRACE_SECONDS}",
                    "1m",
                    "critical",
                    "Beat missed schedule entry {{ $labels.entry }}",
                    f"The entry was due more than {BEAT_GRACE_SECONDS} s ago and no Beat sent it (no leader, Beat "
                    "wedged, or the broker refused the publish).",
                ),
                _rule(
                    "TaskfleetBeatMissedRuns",
                    f"max by (entry) (increase(taskfleet_beat_missed_total[{BEAT_MISSED_WINDOW}])) > 0",
                    "0m",
                    "critical",
                    "Beat missed {{ $value | humanize }} run(s) of schedule entry {{ $labels.entry }}",
                    "Runs of the entry fell due while no Beat was sending (leader died, no standby took over "
                    "in time, Beat restarted late) and were older than its catch-up window when a leader came, so "
                    "they were not sent. Beat logs each as 'beat: MISSED'. Run the task by hand if the work is "
                    f"still needed. Fires for {BEAT_MISSED_WINDOW} after the miss.",
                ),
                _rule(
                    "TaskfleetBeatDown",
                    "absent(taskfleet_beat_next_send_timestamp_seconds)",
                    "5m",
                    "critical",
                    "No Beat is running",
                    "No Beat exposes its schedule: scheduled jobs are not sent.",
                ),
            ],
        },
        {
            "name": "taskfleet.api",
            "rules": [
                _rule(
                    "TaskfleetApiServerErrors",
                    'sum by (route) (rate(taskfleet_http_requests_total{status=~"5.."}[5m]))\n'
                    "/ sum by (route) (rate(taskfleet_http_requests_total[5m])) > 0.05",
                    "5m",
                    "warning",
                    "API route {{ $labels.route }} answers 5xx to {{ $value | humanizePercentage }} of requests",
                    "More than 5% server errors over 5 minutes; see the API logs (trace ids are in every line).",
                ),
                _rule(
                    "TaskfleetOutboxStuck",
                    "max by (queue_name) (taskfleet_outbox_oldest_age_seconds) > 120",
                    "5m",
                    "warning",
                    "Outbox: a committed {{ $labels.queue_name }} job has waited {{ $value | humanizeDuration }} "
                    "to be published",
                    "Jobs committed to the outbox do not reach the broker: Valkey unreachable from the relay, or no "
                    "relay running (OUTBOX_RELAY_ENABLED off on the API and no python -m taskfleet_api.outbox). "
                    "The relay logs each failed publish; see docs/outbox.md.",
                ),
            ],
        },
    ]


def rules_file(for_override: str | None = None) -> dict[str, Any]:
    out = groups()
    if for_override is not None:
        for group in out:
            group["interval"] = "1s"
            for rule in group["rules"]:
                rule["for"] = for_override
    return {"groups": out}


def alert_names() -> list[str]:
    return sorted({r["alert"] for g in groups() for r in g["rules"]})
