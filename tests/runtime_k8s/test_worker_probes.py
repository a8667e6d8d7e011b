"""The heartbeat bootstep and the ready file, against a real prefork worker and the real probe CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.runtime_k8s.conftest import probe


def wait_until(predicate, timeout: float, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def test_probes_follow_a_real_worker_from_start_to_shutdown(worker_factory, k8s_env) -> None:  # type: ignore[no-untyped-def]
    health = Path(k8s_env["WORKER_HEALTH_DIR"])
    health.mkdir(parents=True)
    stale = health / "worker-default.ready"
    stale.write_text("left by a killed container\n")  # an emptyDir survives container restarts
    assert probe(k8s_env, "ready", "worker-default").returncode == 1, "no heartbeat yet: not ready"

    started = time.time()
    worker = worker_factory("default", "--concurrency", "1", env=k8s_env)
    heartbeat = health / "worker-default.heartbeat"

    assert probe(k8s_env, "live", "worker-default").returncode == 0
    assert probe(k8s_env, "ready", "worker-default").returncode == 0
    assert stale.stat().st_mtime >= started, "the stale ready file was replaced on worker_ready"

    # The main process's timer keeps refreshing the heartbeat ...
    first = heartbeat.stat().st_mtime
    assert wait_until(lambda: heartbeat.stat().st_mtime > first + 0.9, timeout=5)

    # ... and only while the main process runs: a stopped (wedged) worker fails liveness after the max age.
    worker.signal(signal.SIGSTOP)
    try:
        time.sleep(3.5)
        result = probe(k8s_env, "live", "worker-default")
        assert result.returncode == 1
        assert "old" in result.stderr
    finally:
        worker.signal(signal.SIGCONT)
    assert wait_until(lambda: probe(k8s_env, "live", "worker-default").returncode == 0, timeout=5)

    # Warm shutdown removes the ready file: the pod leaves the endpoints while it drains.
    worker.signal(signal.SIGTERM)
    assert worker.process is not None
    worker.process.wait(30)
    assert not (health / "worker-default.ready").exists()
    result = probe(k8s_env, "ready", "worker-default")
    assert result.returncode == 1


def test_probe_cli_reports_a_missing_heartbeat(k8s_env) -> None:  # type: ignore[no-untyped-def]
    result = probe(k8s_env, "live", "worker-nothing")
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_probe_cli_imports_neither_celery_nor_pydantic(k8s_env) -> None:  # type: ignore[no-untyped-def]
    """A probe runs every few seconds in every pod: it must not import the whole app (inspect ping does)."""
    code = (
        "import sys, taskfleet_core.observability.probes; "
        "print(sorted({'celery', 'pydantic', 'redis'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=k8s_env, capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "[]"


def test_probe_cli_defaults_match_settings() -> None:
    from taskfleet_core.observability import probes
    from taskfleet_core.settings import ProbeSettings

    fields = ProbeSettings.model_fields
    assert str(fields["worker_health_dir"].default) == str(Path(probes.DEFAULT_HEALTH_DIR))
    assert fields["worker_heartbeat_max_age_seconds"].default == probes.DEFAULT_MAX_AGE_SECONDS
