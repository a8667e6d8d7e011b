"""The per-pod SQLite default only with one API pod: the chart refuses it for a multi-pod API, and the default
render (one API pod, no HPA, no API PDB) still works."""

from __future__ import annotations

import pytest

from tests.chart.render import by_name, parse, render_scenario, render_values

PREFIX = "tf-taskfleet"


def test_the_default_is_one_api_pod_on_sqlite() -> None:
    objects = list(render_scenario("default"))
    api = by_name(objects, "Deployment")[f"{PREFIX}-api"]
    assert api["spec"]["replicas"] == 1
    env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"].startswith("sqlite")
    assert f"{PREFIX}-api" not in by_name(objects, "HorizontalPodAutoscaler")
    assert f"{PREFIX}-api" not in by_name(objects, "PodDisruptionBudget"), "minAvailable 1 on one pod blocks drains"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ("api: {hpa: {enabled: true}}", "api.hpa.maxReplicas 6"),
        ("api: {replicas: 2}", "api.replicas 2"),
        ("database: {url: 'sqlite+aiosqlite:////data/x.db'}\napi: {replicas: 3}", "api.replicas 3"),
    ],
)
def test_sqlite_with_a_multi_pod_api_fails_with_the_fix(values: str, named: str) -> None:
    out = render_values(values)
    assert out.returncode != 0
    assert "the per-pod SQLite default" in out.stderr and named in out.stderr
    assert "Set database.existingSecret to a PostgreSQL URL" in out.stderr


@pytest.mark.parametrize(
    ("values", "api_budget"),
    [
        ("database: {existingSecret: db}\napi: {hpa: {enabled: true}}", True),
        ("database: {url: 'postgresql+asyncpg://u:p@db:5432/fleet'}\napi: {replicas: 3}", True),
        ("api: {hpa: {enabled: true, minReplicas: 1, maxReplicas: 1}}", False),
    ],
)
def test_a_shared_database_or_a_single_pod_renders(values: str, api_budget: bool) -> None:
    out = render_values(values)
    assert out.returncode == 0, out.stderr
    budgets = by_name(parse(out.stdout), "PodDisruptionBudget")
    assert (f"{PREFIX}-api" in budgets) is api_budget
