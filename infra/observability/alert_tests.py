"""promtool unit tests for every alert: each fires on a bad series and stays quiet on a healthy one.

Written out as ``prometheus/alerts_test.yml`` by ``generate.py`` so descriptions are taken
from ``rules.py`` (one source), while each expected summary is spelled out by hand: that
checks the template renders what an on-call engineer reads.
"""

from __future__ import annotations

from typing import Any

import rules


def _description(alert: str, queue: str | None = None) -> str:
    for group in rules.groups():
        for rule in group["rules"]:
            if rule["alert"] == alert and (queue is None or rule["labels"].get("queue_name") == queue):
                return rule["annotations"]["description"]
    raise KeyError(alert)


def _case(
    series: list[tuple[str, str]],
    alert: str,
    quiet_at: str,
    firing_at: str,
    labels: dict[str, str],
    summary: str,
    severity: str,
    queue: str | None = None,
) -> dict[str, Any]:
    exp = {
        "exp_labels": {"severity": severity, "service": "taskfleet", **labels},
        "exp_annotations": {"summary": summary, "description": _description(alert, queue)},
    }
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "alert_rule_test": [
            {"eval_time": quiet_at, "alertname": alert, "exp_alerts": []},
            {"eval_time": firing_at, "alertname": alert, "exp_alerts": [exp]},
        ],
    }


def _healthy(series: list[tuple[str, str]], alert: str, at: str) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}],
    }


TASK = 'queue_name="default", name="maintenance.canary", hostname="worker-default"'
QL = 'celery_queue_length{queue_name="matching"}'
WORKERS = 'celery_active_worker_count{queue_name="matching"}'
HB = 'taskfleet_worker_heartbeat_timestamp_seconds{hostname="default@pod-a", queue_name="default"}'
NEXT = 'taskfleet_beat_next_send_timestamp_seconds{entry="health-check", name="maintenance.health_check"}'
MISSED = 'taskfleet_beat_missed_total{entry="health-check", name="maintenance.health_check", instance="%s"}'
HTTP = 'taskfleet_http_requests_total{method="POST", route="/api/v1/jobs", status="%s"}'
OUTBOX = 'taskfleet_outbox_oldest_age_seconds{queue_name="%s", instance="api-0"}'


def tests() -> list[dict[str, Any]]:
    ratio = "TaskfleetTaskHighFailureRatio"
    return [
        # 1 failure a minute against 10 successes: 9.1% > 5%, and at least 3 failures in 10 minutes
        _case(
            [
                (f'celery_task_failed_total{{{TASK}, exception="PermanentError"}}', "0x5 1+1x30"),
                (f"celery_task_succeeded_total{{{TASK}}}", "0+10x35"),
            ],
            ratio,
            "5m",
            "20m",
            {"queue_name": "default", "name": "maintenance.canary"},
            "Task maintenance.canary on default fails 9.091% of runs",
            "warning",
        ),
        # the same ratio with only 2 failures in 10 minutes does not page
        _healthy(
            [
                (f'celery_task_failed_total{{{TASK}, exception="PermanentError"}}', "0x10 1x5 2x20"),
                (f"celery_task_succeeded_total{{{TASK}}}", "0+1x35"),
            ],
            ratio,
            "20m",
        ),
        # a failing task that never succeeded still pages (no success series at all)
        _case(
            [(f'celery_task_failed_total{{{TASK}, exception="TransientError"}}', "0x5 1+1x30")],
            ratio,
            "5m",
            "20m",
            {"queue_name": "default", "name": "maintenance.canary"},
            "Task maintenance.canary on default fails 100% of runs",
            "warning",
        ),
        # the oldest email waits 10 minutes and more: over email's 300 s
        _case(
            [('taskfleet_queue_oldest_message_age_seconds{queue_name="email"}', "0x5 60+60x30")],
            "TaskfleetBacklogTooOld",
            "5m",
            "20m",
            {"queue_name": "email"},
            "Queue email: the oldest waiting message is 15m 0s old",
            "warning",
            queue="email",
        ),
        # the same age on sync (threshold 1800 s) is fine
        _healthy(
            [('taskfleet_queue_oldest_message_age_seconds{queue_name="sync"}', "0x5 60+60x30")],
            "TaskfleetBacklogTooOld",
            "20m",
        ),
        # matching: 5 waiting, no worker from minute 5 on
        _case(
            [(QL, "5x30"), (WORKERS, "1x5 0x25")],
            "TaskfleetQueueNoConsumers",
            "5m",
            "15m",
            {"queue_name": "matching"},
            "Queue matching has waiting work and no worker consuming it",
            "critical",
        ),
        # an empty queue without workers (KEDA scaled to zero) is fine
        _healthy([(QL, "0x30"), (WORKERS, "0x30")], "TaskfleetQueueNoConsumers", "20m"),
        _case(
            [('taskfleet_dlq_length{queue_name="email"}', "0x20 1 2 3 4x20")],
            "TaskfleetDeadLettersGrowing",
            "15m",
            "25m",
            {"queue_name": "email"},
            "New dead letters on email",
            "warning",
        ),
        # a DLQ that holds entries but does not grow is not news
        _healthy([('taskfleet_dlq_length{queue_name="email"}', "4x40")], "TaskfleetDeadLettersGrowing", "30m"),
        _case(
            [('celery_queue_length{queue_name="default"}', "0x5 _x20")],
            "TaskfleetQueueMetricsAbsent",
            "5m",
            "20m",
            {},
            "No queue metrics: the queue exporter is down or cannot reach Valkey",
            "warning",
        ),
        # the heartbeat is the eval time in seconds until minute 5, then stops
        _case(
            [(HB, "0+60x5 300x20")],
            "TaskfleetWorkerHeartbeatLost",
            "5m",
            "10m",
            {"hostname": "default@pod-a", "queue_name": "default"},
            "Worker default@pod-a stopped its heartbeat",
            "critical",
        ),
        _healthy([(HB, "0+60x30")], "TaskfleetWorkerHeartbeatLost", "30m"),
        # next send due at 300 s and never moved on: missed by more than 300 s from minute 11
        _case(
            [(NEXT, "300x20")],
            "TaskfleetBeatMissedSchedule",
            "10m",
            "15m",
            {"entry": "health-check"},
            "Beat missed schedule entry health-check",
            "critical",
        ),
        _healthy([(NEXT, "300+60x30")], "TaskfleetBeatMissedSchedule", "30m"),
        # two Beats expose the same fleet-wide count; one run missed at minute 10: fires, then ages out after 1h
        _case(
            [(MISSED % "beat-a", "0x9 1x80"), (MISSED % "beat-b", "0x9 1x80")],
            "TaskfleetBeatMissedRuns",
            "9m",
            "12m",
            {"entry": "health-check"},
            "Beat missed 1 run(s) of schedule entry health-check",
            "critical",
        ),
        _healthy([(MISSED % "beat-a", "0x9 1x80")], "TaskfleetBeatMissedRuns", "75m"),
        # a Beat that starts (a new series) at a count Valkey already held is not a new miss
        _healthy([(MISSED % "beat-a", "2x30"), (MISSED % "beat-b", "_x10 2x20")], "TaskfleetBeatMissedRuns", "20m"),
        _case(
            [(NEXT, "300+60x5 _x20")],
            "TaskfleetBeatDown",
            "5m",
            "20m",
            {},
            "No Beat is running",
            "critical",
        ),
        # 1 of 10 requests a minute answers 500
        _case(
            [(HTTP % "500", "0+1x30"), (HTTP % "202", "0+9x30")],
            "TaskfleetApiServerErrors",
            "3m",
            "20m",
            {"route": "/api/v1/jobs"},
            "API route /api/v1/jobs answers 5xx to 10% of requests",
            "warning",
        ),
        # 4xx are the clients' errors, not ours
        _healthy([(HTTP % "422", "0+5x30"), (HTTP % "202", "0+5x30")], "TaskfleetApiServerErrors", "20m"),
        # the broker away: the oldest matching job in the outbox ages a minute a minute
        _case(
            [(OUTBOX % "matching", "0+60x30"), (OUTBOX % "email", "0x30")],
            "TaskfleetOutboxStuck",
            "5m",
            "20m",
            {"queue_name": "matching"},
            "Outbox: a committed matching job has waited 20m 0s to be published",
            "warning",
        ),
        # a relay that publishes within the second, and a short outage (3 minutes) that ends
        _healthy(
            [(OUTBOX % "email", "0x30"), (OUTBOX % "default", "0 60 120 180 0x26")], "TaskfleetOutboxStuck", "20m"
        ),
    ]


def test_file() -> dict[str, Any]:
    return {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": tests()}
