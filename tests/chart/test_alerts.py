"""The chart's PrometheusRule: backlog alerts follow values.queues; scaling (KEDA, HPA) and Valkey memory alerts
are scoped to the release and unit-tested with promtool on the rules the chart actually renders."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import NAMESPACE, REPO, of_kind, parse, render_scenario, render_values, scenario_values

PREFIX = "tf-taskfleet"


def rule_groups(scenario: str) -> list[dict[str, Any]]:
    """The rendered PrometheusRule's groups: production's, or the chart defaults' with the rule switched on."""
    if scenario == "default":
        out = render_values("monitoring: {prometheusRule: {enabled: true}}")
        assert out.returncode == 0, out.stderr
        objects = parse(out.stdout)
    else:
        objects = list(render_scenario(scenario))
    (rule,) = of_kind(objects, "PrometheusRule")
    return rule["spec"]["groups"]


def alerts(groups: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for g in groups for r in g["rules"] if r.get("alert") == name]


def promtool_test(tmp_path: Path, groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run scripts/bootstrap")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "test.yml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests})
    )
    check = subprocess.run([binary, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run([binary, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_one_backlog_alert_per_values_queue_with_its_threshold() -> None:
    for scenario in ("default", "production"):
        vals = scenario_values(scenario)
        backlog = alerts(rule_groups(scenario), "TaskfleetBacklogTooOld")
        expected = {}
        for q in vals["queues"]:
            limit = q.get("timeLimit", vals["workerDefaults"]["timeLimit"])
            expected[q["name"]] = q.get("backlogAlertSeconds") or limit // 5
        assert {r["labels"]["queue_name"]: int(r["expr"].rsplit(">", 1)[1]) for r in backlog} == expected
    assert "reports" in {r["labels"]["queue_name"] for r in alerts(rule_groups("production"), "TaskfleetBacklogTooOld")}


def test_default_thresholds_match_the_local_stacks_rules() -> None:
    sys.path.insert(0, str(REPO / "infra" / "observability"))
    try:
        rules = importlib.import_module("rules")
    finally:
        sys.path.pop(0)
    backlog = alerts(rule_groups("default"), "TaskfleetBacklogTooOld")
    assert {r["labels"]["queue_name"]: r["expr"] for r in backlog} == {
        r["labels"]["queue_name"]: r["expr"]
        for g in rules.groups()
        for r in g["rules"]
        if r["alert"] == "TaskfleetBacklogTooOld"
    }


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def hpa(name: str, current: int, maximum: int) -> list[dict[str, str]]:
    """kube-state-metrics series of one HPA in the release namespace, constant for an hour."""
    labels = {"namespace": NAMESPACE, "horizontalpodautoscaler": name}
    return [
        series("kube_horizontalpodautoscaler_status_current_replicas", labels, f"{current}+0x60"),
        series("kube_horizontalpodautoscaler_spec_max_replicas", labels, f"{maximum}+0x60"),
    ]


def test_production_rules_fire_and_stay_quiet_under_promtool(tmp_path: Path) -> None:
    groups = rule_groups("production")
    ours = {"namespace": NAMESPACE}
    matching_hpa = f"keda-hpa-{PREFIX}-worker-matching"
    tests = [
        {  # a backlog on the values-only queue `reports` (7200 s limit: 1440 s threshold), under it on `email`
            "interval": "1m",
            "input_series": [
                series("taskfleet_queue_oldest_message_age_seconds", {"queue_name": "reports"}, "1500+0x20"),
                series("taskfleet_queue_oldest_message_age_seconds", {"queue_name": "email"}, "200+0x20"),
                series("celery_queue_length", {"queue_name": "reports"}, "1+0x20"),
                series("celery_active_worker_count", {"queue_name": "reports"}, "1+0x20"),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "TaskfleetBacklogTooOld",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning", "service": "taskfleet", "queue_name": "reports"},
                            "exp_annotations": {
                                "summary": "Queue reports: the oldest waiting message is 25m 0s old",
                                "description": "Work waits longer than 1440 s on reports: workers are too few "
                                "(check KEDA's maxReplicaCount, alert TaskfleetAutoscalerAtMax) or stuck.",
                            },
                        }
                    ],
                }
            ],
        },
        {  # KEDA errors on our ScaledObject fire; another namespace's and an old blip do not
            "interval": "1m",
            "input_series": [
                series(
                    "keda_scaler_detail_errors_total",
                    {**ours, "scaledObject": f"{PREFIX}-worker-matching", "scaler": "redisScaler"},
                    "0+2x40",
                ),
                series(
                    "keda_scaler_detail_errors_total",
                    {"namespace": "other", "scaledObject": f"{PREFIX}-worker-matching", "scaler": "redisScaler"},
                    "0+2x40",
                ),
                series(
                    "keda_scaler_detail_errors_total",
                    {**ours, "scaledObject": f"{PREFIX}-worker-email", "scaler": "redisScaler"},
                    "0 1 1+0x40",
                ),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "30m",
                    "alertname": "TaskfleetKedaScalerErrors",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                **ours,
                                "scaledObject": f"{PREFIX}-worker-matching",
                                "severity": "warning",
                                "service": "taskfleet",
                            },
                            "exp_annotations": {
                                "summary": f"KEDA cannot read the queue metrics of {PREFIX}-worker-matching",
                                "description": alerts(groups, "TaskfleetKedaScalerErrors")[0]["annotations"][
                                    "description"
                                ],
                            },
                        }
                    ],
                },
                {"eval_time": "5m", "alertname": "TaskfleetKedaScalerErrors", "exp_alerts": []},
            ],
        },
        {  # the matching pool pinned at max for 40 min fires; our email pool below max and a foreign HPA do not
            "interval": "1m",
            "input_series": [
                *hpa(matching_hpa, current=40, maximum=40),
                *hpa(f"keda-hpa-{PREFIX}-worker-email", current=3, maximum=4),
                *hpa("someone-else", current=5, maximum=5),
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "TaskfleetAutoscalerAtMax", "exp_alerts": []},
                {
                    "eval_time": "45m",
                    "alertname": "TaskfleetAutoscalerAtMax",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                **ours,
                                "horizontalpodautoscaler": matching_hpa,
                                "severity": "warning",
                                "service": "taskfleet",
                            },
                            "exp_annotations": {
                                "summary": f"{matching_hpa} runs at its maximum replicas",
                                "description": alerts(groups, "TaskfleetAutoscalerAtMax")[0]["annotations"][
                                    "description"
                                ],
                            },
                        }
                    ],
                },
            ],
        },
        {  # external Valkey at 90% of maxmemory: High fires, Full does not; a Valkey without maxmemory is ignored
            "interval": "1m",
            "input_series": [
                series("redis_memory_used_bytes", {"job": "valkey-exporter", "instance": "v1"}, "900+0x30"),
                series("redis_memory_max_bytes", {"job": "valkey-exporter", "instance": "v1"}, "1000+0x30"),
                series("redis_memory_used_bytes", {"job": "valkey-exporter", "instance": "v2"}, "900+0x30"),
                series("redis_memory_max_bytes", {"job": "valkey-exporter", "instance": "v2"}, "0+0x30"),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "15m",
                    "alertname": "TaskfleetValkeyMemoryHigh",
                    "exp_alerts": [
                        {
                            "exp_labels": {"instance": "v1", "severity": "warning", "service": "taskfleet"},
                            "exp_annotations": {
                                "summary": "Valkey v1 uses 90% of maxmemory",
                                "description": alerts(groups, "TaskfleetValkeyMemoryHigh")[0]["annotations"][
                                    "description"
                                ],
                            },
                        }
                    ],
                },
                {"eval_time": "15m", "alertname": "TaskfleetValkeyMemoryFull", "exp_alerts": []},
            ],
        },
        {  # full: writes are refused now
            "interval": "1m",
            "input_series": [
                series("redis_memory_used_bytes", {"job": "valkey-exporter", "instance": "v1"}, "995+0x30"),
                series("redis_memory_max_bytes", {"job": "valkey-exporter", "instance": "v1"}, "1000+0x30"),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "5m",
                    "alertname": "TaskfleetValkeyMemoryFull",
                    "exp_alerts": [
                        {
                            "exp_labels": {"instance": "v1", "severity": "critical", "service": "taskfleet"},
                            "exp_annotations": {
                                "summary": "Valkey v1 is full (99.5% of maxmemory)",
                                "description": alerts(groups, "TaskfleetValkeyMemoryFull")[0]["annotations"][
                                    "description"
                                ],
                            },
                        }
                    ],
                }
            ],
        },
    ]
    promtool_test(tmp_path, groups, tests)


def test_scaling_alerts_follow_what_the_release_renders() -> None:
    groups = rule_groups("production")
    expr = alerts(groups, "TaskfleetAutoscalerAtMax")[0]["expr"]
    scaled = {o["metadata"]["name"] for o in of_kind(render_scenario("production"), "ScaledObject")}
    hpas = {o["metadata"]["name"] for o in of_kind(render_scenario("production"), "HorizontalPodAutoscaler")}
    for name in scaled:
        assert f"keda-hpa-{name}" in expr and name in alerts(groups, "TaskfleetKedaScalerErrors")[0]["expr"]
    for name in hpas:
        assert name in expr
    assert f'namespace="{NAMESPACE}"' in expr
