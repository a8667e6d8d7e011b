"""Alembic runs once per install/upgrade in a Helm hook Job, only against a shared database."""

from __future__ import annotations

from tests.chart.render import of_kind, parse, pod_spec, render_scenario, render_values


def test_production_renders_the_migration_hook_job() -> None:
    (job,) = of_kind(render_scenario("production"), "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    assert "serviceAccountName" not in spec, "the chart's ServiceAccount does not exist before install"
    (container,) = spec["containers"]
    assert "upgrade_sync" in container["command"][-1]
    (url,) = [e for e in container["env"] if e["name"] == "DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"]["name"] == "taskfleet-database"
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True and ctx["capabilities"] == {"drop": ["ALL"]}


def test_no_migration_job_for_the_per_pod_sqlite_default_or_when_disabled() -> None:
    result = render_values("")
    assert result.returncode == 0 and not of_kind(parse(result.stdout), "Job")
    result = render_values("database: {existingSecret: db}\nmigrations: {enabled: false}\n")
    assert result.returncode == 0 and not of_kind(parse(result.stdout), "Job")


def test_a_postgresql_url_gets_the_job_too() -> None:
    result = render_values("database: {url: 'postgresql+asyncpg://u:p@db:5432/fleet'}\n")
    assert result.returncode == 0, result.stderr
    (job,) = of_kind(parse(result.stdout), "Job")
    (container,) = pod_spec(job)["containers"]
    assert {"name": "DATABASE_URL", "value": "postgresql+asyncpg://u:p@db:5432/fleet"} in container["env"]


def _env(objects, deployment: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    (deploy,) = [o for o in of_kind(objects, "Deployment") if o["metadata"]["name"] == deployment]
    return {e["name"]: e for e in pod_spec(deploy)["containers"][0]["env"]}


def test_services_wait_for_the_jobs_schema_instead_of_migrating() -> None:
    objects = render_scenario("production")
    for name in ("tf-taskfleet-api", "tf-taskfleet-beat", "tf-taskfleet-worker-sync", "tf-taskfleet-worker-matching"):
        assert _env(objects, name)["DATABASE_MIGRATIONS"] == {"name": "DATABASE_MIGRATIONS", "value": "wait"}, name
    (job,) = of_kind(objects, "Job")
    assert "DATABASE_MIGRATIONS" not in {e["name"] for e in pod_spec(job)["containers"][0]["env"]}


def test_the_per_pod_sqlite_default_migrates_in_process() -> None:
    result = render_values("")
    assert result.returncode == 0, result.stderr
    assert "DATABASE_MIGRATIONS" not in _env(parse(result.stdout), "tf-taskfleet-worker-sync")
