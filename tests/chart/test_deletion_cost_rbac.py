"""Busy-aware scale-in in the chart (scaleIn.deletionCost): the workers' own ServiceAccount, a Role that allows
exactly the one call a worker makes (``patch`` on pods of the release namespace), the pod's name and namespace
from the downward API, and a token mounted into the worker container only. Off: none of it, and workers are told
not to try.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from taskfleet_core.scaling.deletion_cost import DeletionCostSettings
from taskfleet_core.scaling.pod_annotation import POD_PATH

from tests.chart.render import (
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    by_name,
    of_kind,
    parse,
    pod_spec,
    render_scenario,
    render_values,
    scenario_values,
)
from tests.chart.test_render import KUBERNETES_VERSION

PREFIX = f"{RELEASE}-taskfleet"
WORKER_SA = f"{PREFIX}-worker"
ROLE = f"{PREFIX}-worker-deletion-cost"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # where the client's in-cluster config reads it
OFF = "scaleIn: {deletionCost: {enabled: false}}\n"


def workers(objects: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: d for n, d in by_name(objects, "Deployment").items() if n.startswith(f"{PREFIX}-worker-")}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def render_off() -> list[dict[str, Any]]:
    out = render_values(OFF)
    assert out.returncode == 0, out.stderr
    return parse(out.stdout)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_on_by_default_a_role_allows_patch_on_pods_of_the_namespace_and_nothing_else(scenario: str) -> None:
    objects = render_scenario(scenario)
    assert scenario_values(scenario)["scaleIn"]["deletionCost"]["enabled"] is True
    assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding"), "namespaced only"
    (role,) = of_kind(objects, "Role")
    assert role["metadata"]["name"] == ROLE
    assert role["metadata"].get("namespace", NAMESPACE) == NAMESPACE
    # the worker's one call: PATCH /api/v1/namespaces/{ns}/pods/{name} -> core group "", resource "pods"
    assert POD_PATH.startswith("/api/v1/namespaces/{namespace}/pods/")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]

    (binding,) = of_kind(objects, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": WORKER_SA, "namespace": NAMESPACE}]
    account = by_name(objects, "ServiceAccount")[WORKER_SA]
    assert account["automountServiceAccountToken"] is False, "no pod gets a token it did not ask for"
    for obj in (role, binding, account):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_worker_knows_its_pod_and_only_its_container_holds_the_token(scenario: str) -> None:
    objects = render_scenario(scenario)
    fields = DeletionCostSettings.model_fields
    assert workers(objects)
    for name, deployment in workers(objects).items():
        spec = pod_spec(deployment)
        assert spec["serviceAccountName"] == WORKER_SA, name
        assert spec["automountServiceAccountToken"] is False, name
        (worker,) = spec["containers"]
        env = env_of(worker)
        assert env["DELETION_COST_ENABLED"] == "true"
        assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        interval = env["DELETION_COST_MIN_INTERVAL_SECONDS"]
        assert float(interval) == fields["deletion_cost_min_interval_seconds"].default == 15, "one default"
        for variable in env:
            if variable.startswith(("DELETION_COST_", "POD_")):
                assert variable.lower() in fields, f"{variable} is not a DeletionCostSettings field"

        (mount,) = [m for m in worker["volumeMounts"] if m["mountPath"] == TOKEN_DIR]
        assert mount["readOnly"] is True
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        sources = volume["projected"]["sources"]
        (token,) = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
        assert token == {"path": "token", "expirationSeconds": 3600}
        assert {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}} in sources

    for name, deployment in by_name(objects, "Deployment").items():
        if name in workers(objects):
            continue
        spec = pod_spec(deployment)
        assert spec.get("serviceAccountName") != WORKER_SA, f"{name} must not patch pods"
        mounts = [m["mountPath"] for c in spec["containers"] for m in c.get("volumeMounts", [])]
        assert TOKEN_DIR not in mounts, f"{name} gets no API token"


def test_off_renders_no_rbac_no_token_and_tells_the_workers_not_to_try() -> None:
    objects = render_off()
    assert not of_kind(objects, "Role") and not of_kind(objects, "RoleBinding")
    assert WORKER_SA not in by_name(objects, "ServiceAccount")
    for name, deployment in workers(objects).items():
        spec = pod_spec(deployment)
        assert spec["serviceAccountName"] == PREFIX, name  # the fleet's, which has no permissions
        assert spec["automountServiceAccountToken"] is False
        (worker,) = spec["containers"]
        env = env_of(worker)
        assert env["DELETION_COST_ENABLED"] == "false"
        assert not {"POD_NAME", "POD_NAMESPACE", "DELETION_COST_MIN_INTERVAL_SECONDS"} & set(env)
        assert TOKEN_DIR not in [m["mountPath"] for m in worker["volumeMounts"]]
        assert not [v for v in spec["volumes"] if "projected" in v]


def test_the_rate_bound_and_token_lifetime_are_values_with_bounds() -> None:
    out = render_values("scaleIn: {deletionCost: {minIntervalSeconds: 60, tokenExpirationSeconds: 7200}}\n")
    assert out.returncode == 0, out.stderr
    for deployment in workers(parse(out.stdout)).values():
        spec = pod_spec(deployment)
        assert env_of(spec["containers"][0])["DELETION_COST_MIN_INTERVAL_SECONDS"] == "60"
        sources = [s for v in spec["volumes"] if "projected" in v for s in v["projected"]["sources"]]
        assert {"serviceAccountToken": {"path": "token", "expirationSeconds": 7200}} in sources
    for bad in ("minIntervalSeconds: 0", "tokenExpirationSeconds: 60", "enabled: 'yes'", "patchEverySecond: true"):
        out = render_values(f"scaleIn: {{deletionCost: {{{bad}}}}}\n")
        assert out.returncode != 0 and "values don't meet the specifications of the schema" in out.stderr, bad
