"""k8s/ is the chart rendered for kubectl users: not stale, and each overlay equals the chart with its values."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.chart.render import CHART, REPO, helm, parse, tool

VALUES = REPO / "k8s" / "values"


def render_chart(overlay: str) -> dict[tuple[str, str], dict]:
    result = helm(
        "template", "taskfleet", str(CHART), "--namespace", "taskfleet",
        "-f", str(VALUES / "base.yaml"), "-f", str(VALUES / f"{overlay}.yaml"),
    )  # fmt: skip
    objects = {}
    for obj in parse(result.stdout):
        for meta in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata", {})):
            labels = meta.get("labels", {})
            labels.pop("helm.sh/chart", None)
            if "app.kubernetes.io/managed-by" in labels:
                labels["app.kubernetes.io/managed-by"] = "kustomize"
        objects[(obj["kind"], obj["metadata"]["name"])] = obj
    return objects


def kustomize(overlay: str) -> dict[tuple[str, str], dict]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(REPO / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(result.stdout) if o}


def test_k8s_is_not_stale() -> None:
    result = subprocess.run(
        [str(REPO / "scripts" / "render-k8s"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_kubectl_kustomize_matches_the_chart(overlay: str) -> None:
    built = kustomize(overlay)
    namespace = built.pop(("Namespace", "taskfleet"))
    assert namespace["apiVersion"] == "v1"
    if overlay == "dev":
        secret = built.pop(("Secret", "taskfleet-valkey"))
        assert set(secret["data"]) == {"password"}
    for obj in built.values():
        assert obj["metadata"].pop("namespace", "taskfleet") == "taskfleet"
    expected = render_chart(overlay)
    assert sorted(built) == sorted(expected)
    for k, obj in expected.items():
        assert built[k] == obj, f"{k} differs between kubectl kustomize and helm template"


def test_prod_overlay_keeps_keda_and_beat_singleton() -> None:
    built = kustomize("prod")
    assert ("ScaledObject", "taskfleet-worker-sync") in built
    beat = built[("Deployment", "taskfleet-beat")]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"] == {"type": "Recreate"}
