"""The minimum KEDA version: stated once in Chart.yaml, checked against keda.version, and (keda.requireApi) the
cluster must serve keda.sh/v1alpha1."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.chart.render import CHART, template_args, tool

MIN = "2.17.0"


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *template_args(), *args], capture_output=True, text=True, timeout=60)


def test_chart_states_the_minimum_and_the_scaled_objects_need_it() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["annotations"]["taskfleet.io/keda-min-version"] == MIN
    # the feature that sets the floor is really used
    assert "currentReplicasIfHigher" in (CHART / "templates" / "workers" / "scaledobject.yaml").read_text()


@pytest.mark.parametrize("version", ["2.16.1", "2.9.0", "v2.16.0"])
def test_an_older_keda_fails_naming_the_minimum(version: str) -> None:
    out = render("--set", f"keda.version={version}")
    assert out.returncode != 0
    assert f"keda.version {version} is older than the {MIN} the chart needs" in out.stderr


@pytest.mark.parametrize("version", ["2.17.0", "2.20.1", "v2.18.0", "3.0.0"])
def test_a_recent_keda_renders(version: str) -> None:
    out = render("--set", f"keda.version={version}")
    assert out.returncode == 0, out.stderr


def test_without_keda_the_version_does_not_matter() -> None:
    out = render("--set", "keda.version=2.10.0", "--set", "keda.enabled=false")
    assert out.returncode == 0, out.stderr
    assert "kind: ScaledObject" not in out.stdout


def test_require_api_needs_the_keda_api_group() -> None:
    out = render("--set", "keda.requireApi=true")
    assert out.returncode != 0 and "does not serve keda.sh/v1alpha1" in out.stderr
    out = render("--set", "keda.requireApi=true", "--api-versions", "keda.sh/v1alpha1")
    assert out.returncode == 0, out.stderr
