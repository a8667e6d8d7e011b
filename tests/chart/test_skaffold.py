"""skaffold.yaml, checked without skaffold or Docker: its artifacts, the values it injects, its port-forward."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.chart.render import CHART, PASSWORD_SET, REPO, helm, parse, pod_spec, service_names

SKAFFOLD = yaml.safe_load((REPO / "skaffold.yaml").read_text())
SERVICES = sorted(service_names())


def release() -> dict:
    (only,) = SKAFFOLD["deploy"]["helm"]["releases"]
    return only


def skaffold_key(image: str) -> str:
    """How skaffold names an image in template variables: every non-alphanumeric character becomes _."""
    return re.sub(r"[^A-Za-z0-9]", "_", image)


def render(values_files: list[str], sets: dict[str, str]) -> list[dict]:
    # skaffold installs into a cluster, where the chart can keep a generated Valkey password; helm template cannot
    args = ["template", release()["name"], str(CHART), "--namespace", release()["namespace"], "--set", PASSWORD_SET]
    for path in values_files:
        args += ["-f", str(REPO / path)]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return parse(helm(*args).stdout)


def test_one_artifact_per_service() -> None:
    artifacts = SKAFFOLD["build"]["artifacts"]
    assert sorted(a["image"] for a in artifacts) == [f"taskfleet-{s}" for s in SERVICES]
    for a in artifacts:
        assert a["context"] == "."
        assert a["docker"]["dockerfile"] == "infra/images/service.Dockerfile"
        assert a["docker"]["buildArgs"] == {"SERVICE": a["image"].removeprefix("taskfleet-")}


@pytest.mark.parametrize("profile_values", [None, "prod"])
def test_every_built_image_reaches_its_containers(profile_values: str | None) -> None:
    templates = release()["setValueTemplates"]
    sets = {}
    for artifact in SKAFFOLD["build"]["artifacts"]:
        service = artifact["image"].removeprefix("taskfleet-")
        assert templates[f"images.{service}"] == f"{{{{.IMAGE_FULLY_QUALIFIED_{skaffold_key(artifact['image'])}}}}}"
        sets[f"images.{service}"] = f"built.local/{artifact['image']}:abc123"
    values_files = release()["valuesFiles"]
    if profile_values:
        (profile,) = [p for p in SKAFFOLD["profiles"] if p["name"] == profile_values]
        (patch,) = [op for op in profile["patches"] if op["path"] == "/deploy/helm/releases/0/valuesFiles"]
        values_files = patch["value"]
    objects = render(values_files, sets)
    images = {c["image"] for o in objects if o["kind"] == "Deployment" for c in pod_spec(o)["containers"]} - {None}
    assert {f"built.local/taskfleet-{s}:abc123" for s in SERVICES} <= images
    assert not [i for i in images if "taskfleet-" in i and not i.startswith("built.local/")]


def test_port_forward_targets_the_api_service() -> None:
    (forward,) = SKAFFOLD["portForward"]
    objects = render(release()["valuesFiles"], {})
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    api = services[forward["resourceName"]]
    assert forward["port"] in [p["port"] for p in api["spec"]["ports"]]
    assert forward["namespace"] == release()["namespace"] and forward["localPort"] == 8000


def test_profiles_dev_and_prod_exist_and_their_patches_apply() -> None:
    names = {p["name"] for p in SKAFFOLD["profiles"]}
    assert {"dev", "prod"} <= names
    for profile in SKAFFOLD["profiles"]:
        for op in profile.get("patches", []):
            node = SKAFFOLD
            for part in op["path"].strip("/").split("/"):
                node = node[int(part)] if isinstance(node, list) else node[part]
            if "value" in op and isinstance(op["value"], list):
                assert all((REPO / v).is_file() for v in op["value"])
