"""values.yaml against the queue registry and values.schema.json; bad values fail with a fix in the message."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml
from taskfleet_core.broker import keys
from taskfleet_core.tasks.queues import QUEUES

from tests.chart.render import CHART, SCENARIOS, of_kind, parse, render_values, values


def test_values_queues_equal_the_python_registry() -> None:
    vals = values()
    chart = {q["name"]: {**vals["workerDefaults"], **q} for q in vals["queues"]}
    assert list(chart) == list(QUEUES), "same queues, same order"
    for name, spec in QUEUES.items():
        q = chart[name]
        got = (q["concurrency"], q["prefetchMultiplier"], q["timeLimit"], q["softTimeLimit"])
        want = (spec.concurrency, spec.prefetch_multiplier, spec.time_limit, spec.soft_time_limit)
        assert got == want, f"values.queues[{name}] (concurrency, prefetch, time limits) differs from QUEUES"
        assert q["retryBackoffMaxSeconds"] == spec.retry.backoff_max, f"values.queues[{name}] retry backoff cap"


def test_keda_list_names_follow_the_registry_keys() -> None:
    keda = values()["keda"]
    for spec in QUEUES.values():
        lists = [spec.name] + [f"{spec.name}{keda['prioritySeparator']}{p}" for p in keda["prioritySteps"]]
        assert lists == spec.waiting_lists()
        assert keda["unackedIndexKey"].format(queue=spec.name) == spec.unacked_index_key
    assert keda["prioritySeparator"] == keys.PRIORITY_SEPARATOR


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_values_files_satisfy_the_schema(scenario: str) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    documents = [values()] + [yaml.safe_load(p.read_text()) for p in SCENARIOS[scenario]]
    for doc in documents:
        # A values file is a partial document: check its keys and types, not the chart's required keys.
        errors = [e for e in jsonschema.Draft7Validator(schema).iter_errors(doc) if e.validator != "required"]
        assert not errors, [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_schema_covers_every_key_of_values_yaml() -> None:
    """Every object decides on unknown keys, every key is described, values.yaml has every top-level key."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    declared = set(schema["properties"]) - {"global"}
    assert declared == set(values()), "values.yaml and values.schema.json list different top-level keys"

    def walk(node: dict, where: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert "additionalProperties" in node, f"{where}: say whether unknown keys are allowed"
        for key, child in node.get("properties", {}).items():
            assert "description" in child or "anyOf" in child, f"{where}.{key} has no description"
            walk(child, f"{where}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{where}[]")

    walk(schema, "values")


QUEUE = "{concurrency: 4, prefetchMultiplier: 1, timeLimit: 1800, softTimeLimit: 1500"

BAD_VALUES = {
    "queue without a name": (f"queues: [{QUEUE}}}]", ["queues/0", "missing property 'name'"]),
    "max below min": (
        f"queues: [{QUEUE}, name: email, minReplicaCount: 5, maxReplicaCount: 2}}]",
        ["queues[0] (email): maxReplicaCount 2 is below minReplicaCount 5", "raise maxReplicaCount"],
    ),
    "grace shorter than the time limit": (
        f"queues: [{QUEUE}, name: sync, terminationGracePeriodSeconds: 600}}]",
        ["queues[0] (sync): terminationGracePeriodSeconds 600 is shorter than timeLimit 1800", "at least 1830"],
    ),
    "cooldown not longer than grace": (
        f"queues: [{QUEUE}, name: sync, cooldownPeriod: 1830}}]",
        ["cooldownPeriod 1830 must be longer than terminationGracePeriodSeconds 1830"],
    ),
    "scale-down window not longer than grace": (
        "workerDefaults: {scaleDown: {stabilizationWindowSeconds: 60}}",
        ["scaleDown.stabilizationWindowSeconds 60 must be longer than terminationGracePeriodSeconds 1830"],
    ),
    "fallback above max": (
        f"queues: [{QUEUE}, name: email, maxReplicaCount: 1}}]",
        ["queues[0] (email): fallback.replicas 2 is above maxReplicaCount 1"],
    ),
    "soft limit not below hard": (
        f"queues: [{QUEUE[: -len('softTimeLimit: 1500')]}softTimeLimit: 1800, name: email}}]",
        ["softTimeLimit 1800 must be below timeLimit 1800"],
    ),
    "visibility timeout below 2 x time limit": (
        f"config: {{visibilityTimeoutSeconds: 3000}}\nqueues: [{QUEUE}, name: email, retryBackoffMaxSeconds: 0}}]",
        ["config.visibilityTimeoutSeconds 3000 is below 2 x timeLimit 1800 of queues[0] (email)", "at least 3600"],
    ),
    "visibility timeout below backoff cap + time limit": (
        f"config: {{visibilityTimeoutSeconds: 4000}}\nqueues: [{QUEUE}, name: sync, retryBackoffMaxSeconds: 3000}}]",
        ["below retryBackoffMaxSeconds 3000 + timeLimit 1800 of queues[0] (sync)", "at least 4800"],
    ),
    "duplicate queue": (f"queues: [{QUEUE}, name: a}}, {QUEUE}, name: a}}]", ['queue "a" is listed twice']),
    "root user": ("podSecurityContext: {runAsNonRoot: false}", ["podSecurityContext/runAsNonRoot"]),
    "beat replicas": ("beat: {replicas: 2}", ["additional properties 'replicas' not allowed"]),
    "flower without auth": ("flower: {enabled: true}", ["flower.basicAuth.existingSecret"]),
    "no valkey at all": ("valkey: {enabled: false}", ["valkey.external.host is empty"]),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_fail_helm_template_with_a_fix(case: str) -> None:
    text, expected = BAD_VALUES[case]
    result = render_values(text)
    assert result.returncode != 0, f"{case}: rendered although it should fail"
    for fragment in expected:
        assert fragment in result.stderr, f"{case}: {fragment!r} not in:\n{result.stderr}"


def test_validation_lists_every_broken_rule_at_once() -> None:
    result = render_values(
        f"queues: [{QUEUE}, name: a, minReplicaCount: 3, maxReplicaCount: 1}}, {QUEUE}, name: b, "
        "terminationGracePeriodSeconds: 100}]"
    )
    assert result.returncode != 0
    assert "VALUES VALIDATION:" in result.stderr
    assert "queues[0] (a)" in result.stderr and "queues[1] (b)" in result.stderr


def test_schema_defaults_are_the_values_yaml_defaults() -> None:
    """The schema documents each default (as Airflow's does); it must not drift from values.yaml."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    checked = 0

    def walk(node: dict, value: object, where: str) -> None:
        nonlocal checked
        if "default" in node:
            assert node["default"] == value, f"{where}: schema default {node['default']!r} != values.yaml {value!r}"
            checked += 1
        if isinstance(value, dict):
            for key, child in node.get("properties", {}).items():
                if key in value:
                    walk(child, value[key], f"{where}.{key}")

    walk(schema, values(), "values")
    assert checked > 100


def test_values_schema_is_generated_from_its_source() -> None:
    script = CHART / "hack" / "schema.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def _visibility_timeouts(text: str) -> set[str]:
    result = render_values(text)
    assert result.returncode == 0, result.stderr
    return {
        env["value"]
        for doc in yaml.safe_load_all(result.stdout)
        if doc and doc["kind"] == "Deployment"
        for c in doc["spec"]["template"]["spec"]["containers"]
        for env in c.get("env", [])
        if env["name"] == "BROKER_VISIBILITY_TIMEOUT_SECONDS"
    }


def test_visibility_timeout_is_derived_from_the_queues() -> None:
    assert _visibility_timeouts("") == {"3600"}, "2 x 1800 (and 1800 + 1800 for sync)"
    assert _visibility_timeouts(f"queues: [{QUEUE}, name: sync, retryBackoffMaxSeconds: 3000}}]") == {"4800"}
    long = f"queues: [{QUEUE[: -len('timeLimit: 1800, softTimeLimit: 1500')]}timeLimit: 7200, softTimeLimit: 7000"
    long += ", name: sync, terminationGracePeriodSeconds: 7230, cooldownPeriod: 7300"
    long += ", scaleDown: {stabilizationWindowSeconds: 7300}}]"
    assert _visibility_timeouts(long) == {"14400"}
    assert _visibility_timeouts("config: {visibilityTimeoutSeconds: 5000}") == {"5000"}


def test_a_queue_entry_takes_every_missing_key_from_worker_defaults() -> None:
    values = (
        "workerDefaults: {concurrency: 6, prefetchMultiplier: 2, timeLimit: 600, softTimeLimit: 500,"
        " terminationGracePeriodSeconds: 630}\n"
        "queues:\n  - name: default\n  - name: email\n    concurrency: 2\n"
    )
    result = render_values(values)
    assert result.returncode == 0, result.stderr
    workers = {d["metadata"]["name"]: d for d in of_kind(parse(result.stdout), "Deployment")}
    args = workers["tf-taskfleet-worker-default"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--concurrency") + 1] == "6" and args[args.index("--prefetch-multiplier") + 1] == "2"
    assert workers["tf-taskfleet-worker-default"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 630
    email = workers["tf-taskfleet-worker-email"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert email[email.index("--concurrency") + 1] == "2", "a queue's own key wins"


def test_a_large_prefetch_fails_with_the_reason() -> None:
    result = render_values("queues:\n  - name: default\n    prefetchMultiplier: 16\n")
    assert result.returncode != 0
    assert "queues[0] (default): prefetchMultiplier 16 is too large" in result.stderr
