"""The optional redis_exporter sidecar of the in-chart Valkey: locked down like every container, reachable only
on its port by Prometheus, scraped by a PodMonitor whose job the Valkey memory alerts select."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import kubernetes_validate

from tests.chart.render import NAMESPACE, by_name, of_kind, parse, pod_spec, render_values
from tests.chart.test_render import CRD_KINDS, KUBERNETES_VERSION, crd_schemas

PREFIX = "tf-taskfleet"
ON = """
valkey: {metrics: {enabled: true}}
monitoring: {podMonitor: {enabled: true}, prometheusRule: {enabled: true}}
networkPolicy: {metricsNamespaceLabels: {kubernetes.io/metadata.name: monitoring}}
"""


def render(values: str) -> list[dict[str, Any]]:
    out = render_values(values)
    assert out.returncode == 0, out.stderr
    return parse(out.stdout)


def test_sidecar_objects_validate() -> None:
    schemas = crd_schemas()
    for obj in render(ON):
        if obj["kind"] in CRD_KINDS:
            schema = schemas[(obj["apiVersion"], obj["kind"])]
            assert not list(jsonschema.Draft7Validator(schema).iter_errors(obj)), obj["metadata"]["name"]
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_exporter_sidecar_reads_the_password_from_the_secret_and_is_locked_down() -> None:
    objects = render(ON)
    valkey = by_name(objects, "StatefulSet")[f"{PREFIX}-valkey"]
    containers = {c["name"]: c for c in pod_spec(valkey)["containers"]}
    exporter = containers["metrics"]
    env = {e["name"]: e for e in exporter["env"]}
    assert env["REDIS_ADDR"]["value"] == "redis://localhost:6379"
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": f"{PREFIX}-valkey", "key": "password"}
    assert exporter["securityContext"] == containers["valkey"]["securityContext"]
    assert exporter["securityContext"]["readOnlyRootFilesystem"] is True
    assert exporter["ports"] == [{"name": "valkey-metrics", "containerPort": 9121}]


def test_only_prometheus_reaches_the_exporter_port() -> None:
    policy = by_name(render(ON), "NetworkPolicy")[f"{PREFIX}-valkey"]
    rules = {r["ports"][0]["port"]: r["from"] for r in policy["spec"]["ingress"]}
    assert set(rules) == {6379, 9121}
    assert rules[9121] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_the_memory_alerts_select_the_pod_monitors_job() -> None:
    objects = render(ON)
    monitor = by_name(objects, "PodMonitor")[f"{PREFIX}-valkey"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "valkey-metrics"
    job = f"{NAMESPACE}/{monitor['metadata']['name']}"  # the Prometheus operator's job label of a PodMonitor
    (rule,) = of_kind(objects, "PrometheusRule")
    (memory,) = [r for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"] == "TaskfleetValkeyMemoryHigh"]
    (regex,) = set(re.findall(r'job=~"([^"]+)"', memory["expr"]))
    assert re.fullmatch(regex, job)
    assert f'namespace="{NAMESPACE}"' in memory["expr"]


def test_off_by_default() -> None:
    objects = render("monitoring: {podMonitor: {enabled: true}}")
    valkey = by_name(objects, "StatefulSet")[f"{PREFIX}-valkey"]
    assert [c["name"] for c in pod_spec(valkey)["containers"]] == ["valkey"]
    assert f"{PREFIX}-valkey" not in by_name(objects, "PodMonitor")
