"""The drain shutdown mode agrees with the rendered chart: the grace period is the one shutdown.py computes.

tests/chart/test_invariants.py checks, for every scenario, that the grace period covers the time limit and
that KEDA waits longer; here the chart's defaults must equal the Python rule, so neither drifts alone.
"""

from __future__ import annotations

from taskfleet_core.reliability import shutdown
from taskfleet_core.tasks.queues import QUEUES

from tests.chart.render import RELEASE, by_name, pod_spec, render_scenario, values

WORKER_PREFIX = f"{RELEASE}-taskfleet-worker-"


def worker_pods() -> dict[str, dict]:
    """Queue name -> pod spec of its worker Deployment, as the chart renders it by default."""
    deployments = by_name(render_scenario("default"), "Deployment")
    return {
        name.removeprefix(WORKER_PREFIX): pod_spec(d)
        for name, d in deployments.items()
        if name.startswith(WORKER_PREFIX)
    }


def test_the_chart_gives_each_queue_exactly_the_grace_period_shutdown_computes() -> None:
    assert values()["workerDefaults"]["graceMarginSeconds"] == shutdown.GRACE_MARGIN_SECONDS
    pods = worker_pods()
    assert set(pods) == set(QUEUES)
    for name, pod in pods.items():
        assert pod["terminationGracePeriodSeconds"] == shutdown.grace_period_seconds(QUEUES[name]), name


def test_drain_mode_keeps_sigterm_a_warm_shutdown(fleet_env: dict[str, str]) -> None:
    from taskfleet_api.producer import celery_app

    app = celery_app()  # built by create_app, like every worker's
    assert app.conf.worker_soft_shutdown_timeout == 0  # no cancel-and-requeue window
    for name, pod in worker_pods().items():
        env = {e["name"] for c in pod["containers"] for e in c.get("env", [])}
        assert "REMAP_SIGTERM" not in env, f"worker {name} would cancel running tasks on SIGTERM"
