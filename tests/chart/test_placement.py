"""podAnnotations, podLabels, priorityClassName, topologySpreadConstraints, affinity, tolerations and nodeSelector
for every component (API, Beat, queue exporter, Flower, Valkey), as the workers take them per queue."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.render import parse, pod_spec, render_scenario, render_values
from tests.chart.test_render import KUBERNETES_VERSION

PREFIX = "tf-taskfleet"
#: values key -> (kind, object name, component label)
COMPONENTS = {
    "api": ("Deployment", f"{PREFIX}-api", "api"),
    "beat": ("Deployment", f"{PREFIX}-beat", "beat"),
    "queueExporter": ("Deployment", f"{PREFIX}-queue-exporter", "queue-exporter"),
    "flower": ("Deployment", f"{PREFIX}-flower", "flower"),
    "valkey": ("StatefulSet", f"{PREFIX}-valkey", "valkey"),
}
ZONE_SPREAD = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
OWN_SELECTOR = {"labelSelector": {"matchLabels": {"tier": "x"}}, "maxSkew": 2, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule"}  # fmt: skip
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["fleet"]}]}]
        }
    }
}
TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "fleet", "effect": "NoSchedule"}


def placement_values(key: str) -> dict[str, Any]:
    return {
        "podAnnotations": {"example.com/owner": f"team-{key}"},
        "podLabels": {"example.com/cost-center": key.lower()},
        "priorityClassName": f"{key.lower()}-priority",
        "topologySpreadConstraints": [ZONE_SPREAD, OWN_SELECTOR],
        "affinity": AFFINITY,
        "tolerations": [TOLERATION],
        "nodeSelector": {"kubernetes.io/os": "linux"},
    }


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    values: dict[str, Any] = {key: placement_values(key) for key in COMPONENTS}
    values["flower"] |= {"enabled": True, "basicAuth": {"existingSecret": "flower-auth"}}
    out = render_values(yaml.safe_dump(values))
    assert out.returncode == 0, out.stderr
    return parse(out.stdout)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


@pytest.mark.parametrize("key", sorted(COMPONENTS))
def test_every_component_takes_the_placement_values(rendered: list[dict[str, Any]], key: str) -> None:
    kind, name, component = COMPONENTS[key]
    obj = find(rendered, kind, name)
    meta = obj["spec"]["template"]["metadata"]
    spec = pod_spec(obj)
    assert meta["annotations"]["example.com/owner"] == f"team-{key}"
    assert meta["labels"]["example.com/cost-center"] == key.lower()
    assert "example.com/cost-center" not in obj["spec"]["selector"]["matchLabels"], "never in selectors"
    assert meta["labels"]["app.kubernetes.io/component"] == component
    assert spec["priorityClassName"] == f"{key.lower()}-priority"
    assert spec["affinity"] == AFFINITY and spec["tolerations"] == [TOLERATION]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    spread, own = spec["topologySpreadConstraints"]
    assert spread == {**ZONE_SPREAD, "labelSelector": {"matchLabels": obj["spec"]["selector"]["matchLabels"]}}
    assert own == OWN_SELECTOR
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("key", sorted(set(COMPONENTS) - {"flower"}))
def test_nothing_extra_by_default(key: str) -> None:
    kind, name, _ = COMPONENTS[key]
    spec = pod_spec(find(list(render_scenario("default")), kind, name))
    assert not {"priorityClassName", "affinity", "tolerations", "nodeSelector", "topologySpreadConstraints"} & set(spec)
