"""Run the real helm from tools/bin (scripts/install-helm) and parse what it renders."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "taskfleet"
#: The vendored upstream CRDs (tests/data/crds, refreshed by scripts/vendor-reference).
CRDS = REPO / "tests" / "data" / "crds"
#: Values scenarios every check runs over: chart defaults, the smallest fleet, a production-like fleet.
SCENARIOS = {
    "default": (),
    "minimal": (CHART / "ci" / "minimal-values.yaml",),
    "production": (CHART / "ci" / "production-values.yaml",),
}
RELEASE = "tf"
NAMESPACE = "fleet"
#: helm template has no cluster in which to keep a generated Valkey password, so the chart refuses to make one
#: (templates/valkey/secret.yaml); every render here names one (ignored where a scenario names an existingSecret).
PASSWORD_SET = "valkey.auth.password=chart-tests-only"


def tool(name: str) -> str:
    """A binary from tools/bin, else from PATH; the chart tests fail (not skip) without it."""
    local = REPO / "tools" / "bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run scripts/install-helm (scripts/bootstrap does)")
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, check=check, timeout=60)


def template_args(values_files: Sequence[Path] = (), sets: Sequence[str] = ()) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--set", PASSWORD_SET]
    for path in values_files:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


def parse(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def render_scenario(name: str) -> tuple[dict[str, Any], ...]:
    """Every object of a scenario, rendered once per test session."""
    return tuple(parse(helm(*template_args(SCENARIOS[name])).stdout))


def render_values(values: str) -> subprocess.CompletedProcess[str]:
    """Render with extra values given as YAML text; the caller checks the return code."""
    return subprocess.run(
        [tool("helm"), *template_args(), "-f", "-"], input=values, capture_output=True, text=True, timeout=60
    )


def of_kind(objects: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def by_name(objects: Sequence[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in of_kind(objects, kind)}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def scenario_values(name: str) -> dict[str, Any]:
    """The chart's values with a scenario's file laid over (top-level keys replaced, lists whole, as helm does)."""
    merged = values()
    for path in SCENARIOS[name]:
        _deep_merge(merged, yaml.safe_load(path.read_text()))
    return merged


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def service_names() -> list[str]:
    """The deployed services, one image each: infra/images/services (read by scripts/build-images too)."""
    text = (REPO / "infra" / "images" / "services").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
