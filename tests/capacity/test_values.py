"""The simulator reads a values file as the chart renders it: every queue's ScaledObject and worker Deployment,
rendered by the real ``helm template`` (tests/chart/render.py), carry the numbers ``queue_scaling`` returns."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from taskfleet_capacity.hpa import behavior_from_spec
from taskfleet_capacity.values import load_values, queue_scaling

from tests.chart.render import CHART, SCENARIOS, by_name, render_scenario, render_values


def _rendered(objects: tuple[dict[str, Any], ...], queue: str) -> tuple[dict[str, Any], dict[str, Any]]:
    scaled = by_name(objects, "ScaledObject")[f"tf-taskfleet-worker-{queue}"]["spec"]
    deployment = by_name(objects, "Deployment")[f"tf-taskfleet-worker-{queue}"]["spec"]["template"]["spec"]
    return scaled, deployment


def _assert_same(scaling: Any, scaled: dict[str, Any], pod: dict[str, Any]) -> None:
    modifiers = scaled["advanced"]["scalingModifiers"]
    args = pod["containers"][0]["args"]
    assert scaling.polling_interval == scaled["pollingInterval"]
    assert scaling.cooldown_period == scaled["cooldownPeriod"]
    assert scaling.min_replicas == scaled["minReplicaCount"]
    assert scaling.max_replicas == scaled["maxReplicaCount"]
    assert scaling.target == float(modifiers["target"])
    assert scaling.activation == float(modifiers["activationTarget"])
    assert scaling.behavior == behavior_from_spec(scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"])
    assert scaling.grace_seconds == pod["terminationGracePeriodSeconds"]
    assert scaling.concurrency == int(args[args.index("--concurrency") + 1])
    assert scaling.prefetch_multiplier == int(args[args.index("--prefetch-multiplier") + 1])


@pytest.mark.parametrize("scenario", ["default", "production"])
def test_every_queue_reads_as_the_chart_renders_it(scenario: str) -> None:
    values = load_values(CHART / "values.yaml", SCENARIOS[scenario])
    objects = render_scenario(scenario)
    for entry in values["queues"]:
        scaled, pod = _rendered(objects, entry["name"])
        _assert_same(queue_scaling(values, entry["name"]), scaled, pod)


def test_a_user_file_overriding_nested_keys(tmp_path) -> None:
    override = {
        "workerDefaults": {"scaleDown": {"pods": 2}, "pollingInterval": 5},
        "queues": [
            {"name": "sync", "concurrency": 2, "listLength": 6, "activationListLength": 3, "maxReplicaCount": 9,
             "scaleUp": {"periodSeconds": 15}},
            {"name": "default"},
        ],
    }  # fmt: skip
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(override))
    rendered = render_values(path.read_text())
    assert rendered.returncode == 0, rendered.stderr
    objects = tuple(doc for doc in yaml.safe_load_all(rendered.stdout) if doc)
    values = load_values(CHART / "values.yaml", [path])
    for queue in ("sync", "default"):
        scaled, pod = _rendered(objects, queue)
        _assert_same(queue_scaling(values, queue), scaled, pod)
    sync = queue_scaling(values, "sync")
    assert (sync.target, sync.polling_interval, sync.behavior.scale_down.policies[0].value) == (6, 5, 2)


def test_keda_off_means_fixed_replicas() -> None:
    values = load_values(CHART / "values.yaml")
    values["keda"] = {**values["keda"], "enabled": False, "replicasWhenDisabled": 3}
    scaling = queue_scaling(values, "sync")
    assert (scaling.autoscaled, scaling.min_replicas, scaling.max_replicas) == (False, 3, 3)


def test_the_rate_limit_comes_from_the_queue_registry() -> None:
    values = load_values(CHART / "values.yaml")
    assert queue_scaling(values, "sync").rate_limit == (10, 60.0)
    assert queue_scaling(values, "email").rate_limit == (30, 60.0)
    assert queue_scaling(values, "matching").rate_limit is None
