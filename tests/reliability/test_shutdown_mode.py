"""The drain shutdown mode agrees with the chart: grace period covers the time limit; KEDA waits longer."""

from __future__ import annotations

from pathlib import Path

import yaml
from taskfleet_core.reliability import shutdown
from taskfleet_core.tasks.queues import QUEUES

VALUES = Path(__file__).resolve().parents[2] / "charts" / "taskfleet" / "values.yaml"


def test_every_queue_gets_a_grace_period_longer_than_its_time_limit() -> None:
    values = yaml.safe_load(VALUES.read_text())
    defaults = values["workerDefaults"]
    for entry in values["queues"]:
        queue = {**defaults, **entry}
        spec = QUEUES[entry["name"]]
        grace = queue["terminationGracePeriodSeconds"]
        assert grace >= shutdown.grace_period_seconds(spec), entry["name"]
        assert queue["cooldownPeriod"] > grace and queue["scaleDown"]["stabilizationWindowSeconds"] > grace


def test_drain_mode_keeps_sigterm_a_warm_shutdown(fleet_env: dict[str, str]) -> None:
    from taskfleet_api.producer import celery_app

    app = celery_app()  # built by create_app, like every worker's
    assert shutdown.MODE == "drain"
    assert app.conf.worker_soft_shutdown_timeout == 0  # no cancel-and-requeue window
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost  # a SIGKILL past the grace requeues
    assert "REMAP_SIGTERM" not in VALUES.read_text()
