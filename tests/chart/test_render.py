"""helm lint and helm template over every scenario; every object validated against its schema.

Core kinds: kubernetes-validate --strict (bundled schemas, no download). KEDA and Prometheus-operator kinds:
the vendored CRDs in tests/data/crds, made strict the way the API server prunes (unknown fields are errors).
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.render import CHART, CRDS, PASSWORD_SET, SCENARIOS, helm, render_scenario

#: The Kubernetes version the objects are validated against (bundled in kubernetes-validate, no download).
KUBERNETES_VERSION = "1.33.0"
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PodMonitor", "PrometheusRule"}


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict JSON schema, from every vendored CRD (tests/data/crds)."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


def _strict(schema: Any) -> Any:
    """Reject fields the schema does not know, as the API server's pruning would silently drop them."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    open_ended = "additionalProperties" in out or out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and not open_ended:
        out["additionalProperties"] = False
    return out


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_lint_passes(scenario: str) -> None:
    args = ["lint", "--strict", str(CHART), "--set", PASSWORD_SET]
    for path in SCENARIOS[scenario]:
        args += ["-f", str(path)]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_core_objects_validate_strictly(scenario: str) -> None:
    objects = [o for o in render_scenario(scenario) if o["kind"] not in CRD_KINDS]
    assert objects
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: no schema ({exc.message}); not a core kind?")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_custom_resources_validate_against_vendored_crds(scenario: str) -> None:
    schemas = crd_schemas()
    for obj in render_scenario(scenario):
        if obj["kind"] not in CRD_KINDS:
            continue
        schema = schemas.get((obj["apiVersion"], obj["kind"]))
        assert schema is not None, f"no vendored CRD for {obj['apiVersion']} {obj['kind']}"
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
            f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors
        )


def test_the_strict_crd_check_catches_a_misspelt_field() -> None:
    """The CRD check is only worth something if an unknown field fails it."""
    scaled = next(o for o in render_scenario("default") if o["kind"] == "ScaledObject")
    broken = {**scaled, "spec": {**scaled["spec"], "cooldownPeriods": 10}}
    schema = crd_schemas()[(scaled["apiVersion"], "ScaledObject")]
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_production_scenario_renders_every_kind() -> None:
    kinds = {o["kind"] for o in render_scenario("production")}
    assert CRD_KINDS | {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "NetworkPolicy"} <= kinds
    assert "ConfigMap" in kinds  # Grafana dashboards
