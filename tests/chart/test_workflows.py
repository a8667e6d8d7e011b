"""The GitHub workflows: lint + tests, chart validation, and one image build per service."""

from __future__ import annotations

import re

import yaml

from tests.chart.render import REPO, service_names

WORKFLOWS = REPO / ".github" / "workflows"


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def runs(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])


def test_every_workflow_cancels_superseded_runs_and_limits_its_time() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = load(path.name)
        assert workflow["concurrency"]["cancel-in-progress"] is True, path.name
        assert workflow["permissions"]["contents"] == "read", path.name
        for name, job in workflow["jobs"].items():
            assert job["timeout-minutes"] <= 60, f"{path.name}:{name}"


def test_ci_lints_and_runs_the_suite_in_a_clean_clone() -> None:
    text = runs(load("ci.yml"))
    assert "ruff check" in text and "ruff format --check" in text
    assert "git clone" in text and "mktemp -d" in text, "the suite runs in a clone with nothing beside it"
    for command in ("./scripts/bootstrap", "make test", "make typecheck"):
        assert command in text
    local = (REPO / ".ci" / "run").read_text()
    for command in ("git", "clone", "mktemp -d", "make bootstrap", "make test", "make typecheck", "ruff check"):
        assert command in local, f".ci/run lacks {command!r}"


def test_chart_workflow_lints_templates_validates_and_checks_drift() -> None:
    text = runs(load("chart.yml"))
    for needle in ("install-helm", "helm lint --strict", "helm template", "kubectl kustomize", "render-k8s --check"):
        assert needle in text
    assert "pytest tests/chart" in text
    for script in re.findall(r"\./(scripts/[\w-]+)", text):
        assert (REPO / script).is_file(), script


def test_image_matrix_is_the_list_of_services() -> None:
    job = load("images.yml")["jobs"]["build"]
    services = sorted(service_names())
    assert sorted(job["strategy"]["matrix"]["service"]) == services
    (build,) = [s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action")]
    assert build["with"]["file"] == "infra/images/service.Dockerfile"
    assert build["with"]["build-args"] == "SERVICE=${{ matrix.service }}"
    assert build["with"]["context"] == "."
