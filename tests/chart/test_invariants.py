"""DESIGN.md's deployment invariants, asserted on the rendered objects of every scenario."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import yaml

from tests.chart.render import (
    CHART,
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    by_name,
    of_kind,
    pod_spec,
    render_scenario,
    scenario_values,
)

PREFIX = f"{RELEASE}-taskfleet"
WORKLOADS = ("Deployment", "StatefulSet")


def queues(scenario: str) -> list[dict[str, Any]]:
    """The scenario's queues with workerDefaults applied, as the chart applies them."""
    vals = scenario_values(scenario)
    out = []
    for raw in vals["queues"]:
        q = {**vals["workerDefaults"], **raw}
        if not q.get("listLength"):
            q["listLength"] = q["concurrency"]
        out.append(q)
    return out


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_one_worker_deployment_per_queue(scenario: str) -> None:
    objects = render_scenario(scenario)
    deployments = by_name(objects, "Deployment")
    workers = {n for n in deployments if n.startswith(f"{PREFIX}-worker-")}
    assert workers == {f"{PREFIX}-worker-{q['name']}" for q in queues(scenario)}
    for q in queues(scenario):
        dep = deployments[f"{PREFIX}-worker-{q['name']}"]
        container = pod_spec(dep)["containers"][0]
        args = container["args"]
        assert args[args.index("--concurrency") + 1] == str(q["concurrency"])
        assert args[args.index("--prefetch-multiplier") + 1] == str(q["prefetchMultiplier"])
        assert args[args.index("--time-limit") + 1] == str(q["timeLimit"])


@pytest.mark.parametrize("scenario", ["default", "production"])
def test_one_scaledobject_per_queue_with_every_list_and_in_flight_work(scenario: str) -> None:
    objects = render_scenario(scenario)
    vals = scenario_values(scenario)
    scaled = by_name(objects, "ScaledObject")
    assert len(scaled) == len(queues(scenario))
    auth = by_name(objects, "TriggerAuthentication")
    db = str(vals["valkey"]["database"])
    for q in queues(scenario):
        name = f"{PREFIX}-worker-{q['name']}"
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in by_name(objects, "Deployment")[name]["spec"], "KEDA owns replicas"
        lists = [t["metadata"]["listName"] for t in spec["triggers"]]
        waiting = [q["name"]] + [f"{q['name']}\x06\x16{p}" for p in (3, 6, 9)]
        assert lists == [*waiting, f"unacked_index:{q['name']}"]
        for trigger in spec["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "redis"
            assert meta["databaseIndex"] == db
            assert meta["listLength"] == str(q["listLength"])
            assert meta["activationListLength"] == str(q["activationListLength"])
            assert "password" not in meta and "passwordFromEnv" not in meta
            assert trigger["authenticationRef"]["name"] in auth
        # replicas = ceil((waiting + running) / listLength): one summed metric, not the max of five
        modifiers = spec["advanced"]["scalingModifiers"]
        assert set(modifiers["formula"].split(" + ")) == {t["name"] for t in spec["triggers"]}
        assert modifiers["target"] == str(q["listLength"])
        assert spec["minReplicaCount"] == q["minReplicaCount"] <= spec["maxReplicaCount"] == q["maxReplicaCount"]
        assert spec["pollingInterval"] and spec["fallback"]["failureThreshold"] >= 1
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["policies"] == [
            {"type": "Pods", "value": q["scaleDown"]["pods"], "periodSeconds": q["scaleDown"]["periodSeconds"]}
        ]


@pytest.mark.parametrize("scenario", ["default", "production"])
def test_no_autoscaler_counts_scheduled_work(scenario: str) -> None:
    """Delayed work (``taskfleet:scheduled:<queue>``, broker/schedule.py) cannot run before it is due: a pod
    started for it would idle. Only the lists and in-flight work drive replicas."""
    from taskfleet_core.broker import keys

    prefix = keys.SCHEDULED_KEY.split("{", 1)[0]
    scaled = by_name(render_scenario(scenario), "ScaledObject")
    assert scaled
    for name, obj in scaled.items():
        for trigger in obj["spec"]["triggers"]:
            read = " ".join(str(v) for v in trigger["metadata"].values())
            assert prefix not in read and "scheduled" not in read, (name, trigger["metadata"])


def test_default_list_length_is_the_queue_concurrency() -> None:
    scaled = by_name(render_scenario("production"), "ScaledObject")
    assert scaled[f"{PREFIX}-worker-sync"]["spec"]["triggers"][0]["metadata"]["listLength"] == "2"
    assert scaled[f"{PREFIX}-worker-matching"]["spec"]["triggers"][0]["metadata"]["listLength"] == "16"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_workers_use_the_same_valkey_database_as_keda(scenario: str) -> None:
    objects = render_scenario(scenario)
    vals = scenario_values(scenario)
    for dep in of_kind(objects, "Deployment"):
        for container in pod_spec(dep)["containers"]:
            url = env_of(container).get("REDIS_URL")
            if url is None:
                continue
            assert url.split("?")[0].endswith(f":{vals['valkey']['port']}/{vals['valkey']['database']}")
            assert ":$(VALKEY_PASSWORD)@" in url, "the password comes from the Secret, never from values"
            names = [e["name"] for e in container["env"]]
            assert names.index("VALKEY_PASSWORD") < names.index("REDIS_URL"), "$(VAR) expands only earlier vars"
            if "$(VALKEY_USERNAME)" in url:
                assert names.index("VALKEY_USERNAME") < names.index("REDIS_URL")


def test_tls_reaches_both_the_workers_and_keda() -> None:
    objects = render_scenario("production")
    api = by_name(objects, "Deployment")[f"{PREFIX}-api"]
    assert env_of(pod_spec(api)["containers"][0])["REDIS_URL"].startswith("rediss://")
    refs = {r["parameter"]: r for r in of_kind(objects, "TriggerAuthentication")[0]["spec"]["secretTargetRef"]}
    assert refs["password"]["name"] == refs["tls"]["name"] == "taskfleet-valkey"
    assert refs["ca"]["name"] == "valkey-ca"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scale_in_never_cuts_a_running_task(scenario: str) -> None:
    objects = render_scenario(scenario)
    deployments = by_name(objects, "Deployment")
    scaled = by_name(objects, "ScaledObject")
    for q in queues(scenario):
        name = f"{PREFIX}-worker-{q['name']}"
        grace = pod_spec(deployments[name])["terminationGracePeriodSeconds"]
        assert grace >= q["timeLimit"] + 30
        if name in scaled:
            spec = scaled[name]["spec"]
            assert spec["cooldownPeriod"] > grace
            assert (
                spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
                > grace
            )


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_exactly_one_beat(scenario: str) -> None:
    beat = by_name(render_scenario(scenario), "Deployment")[f"{PREFIX}-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(pod_spec(beat)["containers"][0])
    assert int(env["BEAT_LOCK_TTL_SECONDS"]) >= 10
    assert not any(f"{PREFIX}-beat" in n for n in by_name(render_scenario(scenario), "HorizontalPodAutoscaler"))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_container_runs_as_root_or_writes_its_image(scenario: str) -> None:
    for obj in render_scenario(scenario):
        if obj["kind"] not in (*WORKLOADS, "Pod"):
            continue
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"].get("runAsUser", 1) != 0
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for c in spec.get("initContainers", []) + spec["containers"]:
            ctx = c["securityContext"]
            where = f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"
            assert ctx["runAsNonRoot"] is True and ctx.get("runAsUser", 1) != 0, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_container_has_resources_and_probes(scenario: str) -> None:
    for obj in render_scenario(scenario):
        if obj["kind"] not in (*WORKLOADS, "Pod"):
            continue
        for c in pod_spec(obj)["containers"]:
            where = f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert "memory" in c["resources"]["limits"], where
            if obj["kind"] == "Pod":  # the helm test pod runs once; it needs no probes
                continue
            assert "livenessProbe" in c and "readinessProbe" in c, where


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_probes_never_ping_through_the_broker(scenario: str) -> None:
    for obj in render_scenario(scenario):
        if obj["kind"] not in WORKLOADS:
            continue
        for c in pod_spec(obj)["containers"]:
            for probe in (c.get("livenessProbe", {}), c.get("readinessProbe", {})):
                command = " ".join(probe.get("exec", {}).get("command", []))
                assert "inspect" not in command and "celery" not in command


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_worker_probes_read_the_heartbeat_and_ready_files(scenario: str) -> None:
    for q in queues(scenario):
        dep = by_name(render_scenario(scenario), "Deployment")[f"{PREFIX}-worker-{q['name']}"]
        c = pod_spec(dep)["containers"][0]
        live = c["livenessProbe"]["exec"]["command"]
        ready = c["readinessProbe"]["exec"]["command"]
        assert live == ["python", "-m", "taskfleet_core.observability.probes", "live", "--name", f"worker-{q['name']}"]
        assert ready == [
            "python",
            "-m",
            "taskfleet_core.observability.probes",
            "ready",
            "--name",
            f"worker-{q['name']}",
        ]
        env = env_of(c)
        assert env["WORKER_HEALTH_DIR"].startswith("/tmp/")
        period = c["livenessProbe"]["periodSeconds"] * c["livenessProbe"]["failureThreshold"]
        assert period > int(env["WORKER_HEARTBEAT_MAX_AGE_SECONDS"]) > int(env["WORKER_HEARTBEAT_INTERVAL_SECONDS"])


def test_valkey_keeps_every_task() -> None:
    objects = render_scenario("default")
    conf = by_name(objects, "ConfigMap")[f"{PREFIX}-valkey"]["data"]["valkey.conf"].splitlines()
    assert "appendonly yes" in conf and "maxmemory-policy noeviction" in conf
    sts = by_name(objects, "StatefulSet")[f"{PREFIX}-valkey"]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    container = pod_spec(sts)["containers"][0]
    assert "VALKEY_PASSWORD" in " ".join(container["args"]) and "requirepass" in " ".join(container["args"])
    assert env_of(container)["VALKEY_PASSWORD"]["secretKeyRef"]["name"] == f"{PREFIX}-valkey"
    assert by_name(objects, "Secret")[f"{PREFIX}-valkey"]["data"]["password"]


def test_only_fleet_pods_and_keda_reach_valkey() -> None:
    objects = render_scenario("default")
    policy = by_name(objects, "NetworkPolicy")[f"{PREFIX}-valkey"]["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "valkey"
    sources = policy["ingress"][0]["from"]
    fleet = sources[0]["podSelector"]["matchLabels"]
    assert fleet == {"app.kubernetes.io/instance": RELEASE, "taskfleet.io/valkey-client": "true"}
    assert sources[1]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}
    for obj in of_kind(objects, "Deployment"):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert labels.get("taskfleet.io/valkey-client") == "true", obj["metadata"]["name"]
    valkey_labels = by_name(objects, "StatefulSet")[f"{PREFIX}-valkey"]["spec"]["template"]["metadata"]["labels"]
    assert "taskfleet.io/valkey-client" not in valkey_labels


@pytest.mark.parametrize("scenario", ["default", "production"])
def test_every_pool_and_the_api_have_a_disruption_budget(scenario: str) -> None:
    """Every pool, and the API when it can run more than one pod (minAvailable 1 on one pod blocks every drain)."""
    objects = render_scenario(scenario)
    budgets = by_name(objects, "PodDisruptionBudget")
    for dep in of_kind(objects, "Deployment"):
        component = dep["metadata"]["labels"]["app.kubernetes.io/component"]
        multi_pod_api = "replicas" not in dep["spec"] or dep["spec"]["replicas"] > 1
        if component.startswith("worker-") or (component == "api" and multi_pod_api):
            pdb = budgets[dep["metadata"]["name"]]
            assert pdb["spec"]["selector"] == dep["spec"]["selector"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_standard_labels_and_selectors(scenario: str) -> None:
    for obj in render_scenario(scenario):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE, obj["metadata"]["name"]
        assert labels["app.kubernetes.io/part-of"] == "taskfleet"
        assert {"app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/managed-by"} <= set(labels)
        if obj["kind"] in WORKLOADS:
            selector = obj["spec"]["selector"]["matchLabels"]
            assert set(selector) == {
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/component",
            }
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()


def test_api_has_service_hpa_and_optional_ingress() -> None:
    objects = render_scenario("production")
    hpa = by_name(objects, "HorizontalPodAutoscaler")[f"{PREFIX}-api"]["spec"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in by_name(objects, "Deployment")[f"{PREFIX}-api"]["spec"]
    assert by_name(objects, "Ingress")[f"{PREFIX}-api"]["spec"]["rules"][0]["host"] == "taskfleet.example.com"
    assert not of_kind(render_scenario("default"), "Ingress")


def test_flower_is_behind_basic_auth() -> None:
    flower = by_name(render_scenario("production"), "Deployment")[f"{PREFIX}-flower"]
    env = env_of(pod_spec(flower)["containers"][0])
    assert env["FLOWER_BASIC_AUTH"]["secretKeyRef"] == {"name": "taskfleet-flower-auth", "key": "auth"}


def test_dashboards_are_the_generated_ones_labelled_for_the_grafana_sidecar() -> None:
    files = sorted((CHART / "files" / "observability" / "dashboards").glob("*.json"))
    maps = [o for o in of_kind(render_scenario("production"), "ConfigMap") if "dashboard" in o["metadata"]["name"]]
    assert len(maps) == len(files) >= 1
    shipped = {name: text for m in maps for name, text in m["data"].items()}
    for path in files:
        assert json.loads(shipped[path.name]) == json.loads(path.read_text())
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)


def test_prometheus_rule_carries_the_generated_alerts() -> None:
    (rule,) = of_kind(render_scenario("production"), "PrometheusRule")
    source = yaml.safe_load((CHART / "files" / "observability" / "rules" / "taskfleet-alerts.yaml").read_text())
    rendered = {g["name"]: g["rules"] for g in rule["spec"]["groups"]}
    for group in source["groups"]:  # carried unchanged, except that the backlog alerts follow values.queues
        kept = [r for r in group["rules"] if r["alert"] != "TaskfleetBacklogTooOld"]
        assert [r for r in rendered[group["name"]] if r["alert"] != "TaskfleetBacklogTooOld"] == kept
    assert set(rendered) == {g["name"] for g in source["groups"]} | {"taskfleet.scaling", "taskfleet.valkey"}
    assert any("{{ $labels." in str(r.get("annotations")) for g in source["groups"] for r in g["rules"]), (
        "Prometheus templates pass through Helm untouched"
    )


def test_queue_exporter_is_a_single_deployment_scraped_by_the_pod_monitor() -> None:
    objects = render_scenario("production")
    exporter = by_name(objects, "Deployment")[f"{PREFIX}-queue-exporter"]
    assert exporter["spec"]["replicas"] == 1
    container = pod_spec(exporter)["containers"][0]
    assert container["command"] == ["python", "-m", "taskfleet_queue_exporter"]
    assert container["ports"][0]["name"] == "metrics"
    (monitor,) = of_kind(objects, "PodMonitor")
    excluded = monitor["spec"]["selector"]["matchExpressions"][1]["values"]
    assert "queue-exporter" not in excluded and monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_keda_off_gives_fixed_replicas_and_no_scaledobjects() -> None:
    objects = render_scenario("minimal")
    assert not of_kind(objects, "ScaledObject") and not of_kind(objects, "TriggerAuthentication")
    for q in queues("minimal"):
        assert by_name(objects, "Deployment")[f"{PREFIX}-worker-{q['name']}"]["spec"]["replicas"] == 1


def test_a_queue_added_in_values_gets_its_pool_and_autoscaler() -> None:
    """Adding a queue is a values change: production-values.yaml adds `reports` without a template."""
    objects = render_scenario("production")
    dep = by_name(objects, "Deployment")[f"{PREFIX}-worker-reports"]
    assert pod_spec(dep)["terminationGracePeriodSeconds"] == 7260
    spec = by_name(objects, "ScaledObject")[f"{PREFIX}-worker-reports"]["spec"]
    assert spec["triggers"][-1]["metadata"]["listName"] == "unacked_index:reports"
    assert math.ceil(10 / int(spec["advanced"]["scalingModifiers"]["target"])) == 5


def test_objects_land_in_the_release_namespace() -> None:
    address = by_name(render_scenario("default"), "ScaledObject")[f"{PREFIX}-worker-email"]["spec"]["triggers"][0]
    assert address["metadata"]["address"] == f"{PREFIX}-valkey.{NAMESPACE}.svc:6379"
