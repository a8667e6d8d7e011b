"""Workers whose grace period exceeds Cluster Autoscaler's 600 s default are protected from node scale-down and
Karpenter consolidation (which would cut a warm shutdown short); podAnnotations/podLabels reach the pods."""

from __future__ import annotations

from typing import Any

from tests.chart.render import of_kind, parse, render_values

PROTECTION = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "karpenter.sh/do-not-disrupt": "true"}


def workers(values: str) -> dict[str, dict[str, Any]]:
    result = render_values(values)
    assert result.returncode == 0, result.stderr
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]
        for d in of_kind(parse(result.stdout), "Deployment")
        if "-worker-" in d["metadata"]["name"]
    }


def short_queue(**extra: str) -> str:
    """One queue whose grace period (400 s) is under 600 s."""
    more = "".join(f", {k}: {v}" for k, v in extra.items())
    return (
        "queues:\n  - {name: default, concurrency: 1, prefetchMultiplier: 1, timeLimit: 300, softTimeLimit: 200,"
        " terminationGracePeriodSeconds: 400, cooldownPeriod: 500,"
        f" scaleDown: {{stabilizationWindowSeconds: 500}}{more}}}\n"
    )


def test_default_workers_are_protected_from_eviction() -> None:
    pods = workers("")
    assert len(pods) == 4
    for name, meta in pods.items():
        assert PROTECTION.items() <= meta["annotations"].items(), name


def test_protection_can_be_switched_off_through_worker_defaults() -> None:
    for name, meta in workers("workerDefaults: {evictionProtection: false}\n").items():
        assert not PROTECTION.keys() & meta["annotations"].keys(), name


def test_no_protection_when_the_grace_period_fits_the_autoscaler_default() -> None:
    (meta,) = workers(short_queue()).values()
    assert not PROTECTION.keys() & meta["annotations"].keys()


def test_pod_annotations_and_labels_from_defaults_and_queue() -> None:
    values = "workerDefaults: {podAnnotations: {team: fleet}, podLabels: {cost-centre: grants}}\n"
    for name, meta in workers(values).items():
        assert meta["annotations"]["team"] == "fleet", name
        assert meta["labels"]["cost-centre"] == "grants", name
    (meta,) = workers(short_queue(podLabels="{tier: batch}")).values()
    assert meta["labels"]["tier"] == "batch"


def worker_specs(values: str) -> dict[str, dict[str, Any]]:
    result = render_values(values)
    assert result.returncode == 0, result.stderr
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in of_kind(parse(result.stdout), "Deployment")
        if "-worker-" in d["metadata"]["name"]
    }


def test_priority_class_and_topology_spread_reach_every_worker() -> None:
    values = (
        "workerDefaults:\n  priorityClassName: batch\n  topologySpreadConstraints:\n"
        "    - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}\n"
    )
    for name, spec in worker_specs(values).items():
        assert spec["priorityClassName"] == "batch", name
        (constraint,) = spec["topologySpreadConstraints"]
        component = constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"]
        assert name.endswith(component), "the queue's own pods are spread, not the whole fleet"
    for spec in worker_specs("").values():
        assert "priorityClassName" not in spec and "topologySpreadConstraints" not in spec
