"""Recovery in seconds: the reaper returns a lost worker's in-flight messages; a broker loss never ends a job.

Real processes with the production visibility timeout (3600 s, never shortened here): only the reaper can bring
a message back within the test's time. ``WORKER_LOST_SECONDS`` is 10 s (the harness's value) where its length is
not the point; ``test_default_worker_lost_seconds_is_at_most_a_minute`` checks the default.
"""

from __future__ import annotations

import time

import pytest
from taskfleet_core.broker import inflight
from taskfleet_core.settings import BrokerSettings
from taskfleet_core.tasks.queues import visibility_timeout

from tests.reliability.harness import Fleet

pytestmark = pytest.mark.slow

LOST = 10.0  # the harness's WORKER_LOST_SECONDS
REAP_SLACK = 5.0  # reaper interval (2 s) + scheduling


def deliveries(fleet: Fleet, job_id: str) -> dict[str, int]:
    """How often each worker log says it received the job (one line per delivery)."""
    out: dict[str, int] = {}
    for log in fleet.workdir.glob("worker-*.log"):
        count = log.read_text(errors="replace").count(f"[{job_id}] received")
        if count:
            out[log.name] = count
    return out


def wait_for(predicate, timeout: float, step: float = 0.1) -> float:  # type: ignore[no-untyped-def]
    """Poll until ``predicate()`` is true; returns when (monotonic). Fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(step)
    return time.monotonic()


def running(fleet: Fleet, job_id: str) -> bool:
    return fleet.result(job_id).get("status") in {"STARTED", "PROGRESS"}


def test_the_fleet_runs_on_the_production_visibility_timeout(fleet: Fleet) -> None:
    assert "BROKER_VISIBILITY_TIMEOUT_SECONDS" not in fleet.env
    assert fleet.env["WORKER_LOST_SECONDS"] == str(int(LOST))


def test_default_worker_lost_seconds_is_at_most_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKER_LOST_SECONDS", raising=False)
    monkeypatch.delenv("BROKER_VISIBILITY_TIMEOUT_SECONDS", raising=False)
    settings = BrokerSettings()
    assert settings.worker_lost_seconds <= 60
    assert settings.broker_visibility_timeout_seconds is None and visibility_timeout() == 3600  # the last resort


@pytest.mark.timeout(180)
def test_sigkill_of_a_worker_main_process_mid_task_reruns_the_job_within_worker_lost_seconds(clean: Fleet) -> None:
    [victim] = clean.start_workers("default", 1, "--concurrency", "1")
    job = clean.submit("maintenance.canary", kwargs={"steps": 4, "sleep_seconds": 8})
    assert job
    wait_for(lambda: running(clean, job), 30)
    [survivor] = clean.start_workers("default", 1, "--concurrency", "1")
    registry = inflight.registered(clean.valkey)
    [victim_id] = [w for w, e in registry.items() if e.get("pid") == victim.process.pid]  # type: ignore[union-attr]
    assert clean.valkey.smembers(inflight.inflight_key(victim_id)), "the delivery is attributed to its worker"

    clean.kill(victim)  # SIGKILL the main process and its pool children (the container dies)
    killed = time.monotonic()
    rerun = wait_for(lambda: survivor.log_path.name in deliveries(clean, job), LOST + REAP_SLACK + 5)
    recovery = rerun - killed
    print(f"\nSIGKILL mid-task: job delivered again {recovery:.1f}s after the kill (WORKER_LOST_SECONDS={LOST:g})")
    assert recovery <= LOST + REAP_SLACK

    states = clean.wait_final([job], timeout=60)
    assert states[job] == "SUCCESS"
    assert clean.result(job)["worker"].startswith(survivor.args[1].split("@")[0])
    assert clean.valkey.zcard("unacked_index:default") == 0  # the per-queue in-flight count is right again
    assert not clean.valkey.exists(inflight.inflight_key(victim_id))
    assert victim_id not in inflight.registered(clean.valkey)
    assert "lost its heartbeat" in "".join(p.log() for p in [survivor, *clean.workers])


@pytest.mark.timeout(180)
def test_a_live_worker_running_a_task_longer_than_worker_lost_seconds_keeps_it(clean: Fleet) -> None:
    clean.start_workers("default", 2, "--concurrency", "1")  # an idle second worker would take a redelivery
    job = clean.submit("maintenance.canary", kwargs={"steps": 10, "sleep_seconds": 3 * LOST})
    assert job
    wait_for(lambda: running(clean, job), 30)
    states = clean.wait_final([job], timeout=3 * LOST + 60)
    assert states[job] == "SUCCESS"
    assert sum(deliveries(clean, job).values()) == 1, deliveries(clean, job)  # one run only
    assert clean.result(job)["retries"] == 0
    assert not any("lost its heartbeat" in p.log() for p in clean.workers)
    assert clean.valkey.zcard("unacked_index:default") == 0


@pytest.mark.timeout(240)
def test_valkey_kill_9_while_jobs_run_ends_no_job_revoked_and_loses_none(clean: Fleet) -> None:
    workers = clean.start_workers("default", 2)  # 2 x 4 slots
    jobs = [clean.submit("maintenance.canary", kwargs={"steps": 8, "sleep_seconds": 12}) for _ in range(6)]
    ids = [j for j in jobs if j]
    assert len(ids) == 6
    wait_for(lambda: all(running(clean, j) for j in ids), 30)
    time.sleep(1.5)  # appendfsync everysec: what was written before this is on disk

    server = clean.redis.process
    assert server is not None
    server.kill()  # kill -9: no shutdown, no final fsync
    server.wait(10)
    down_at = time.monotonic()
    time.sleep(3)
    clean.redis.start()  # same port and directory: the AOF is replayed
    after = [clean.submit("maintenance.canary", kwargs={"steps": 1}) for _ in range(3)]
    ids += [j for j in after if j]

    states = clean.wait_final(ids, timeout=120)
    done = time.monotonic() - down_at
    revoked = [j for j, s in states.items() if s == "REVOKED"]
    lost = [j for j, s in states.items() if s != "SUCCESS"]
    print(f"\nValkey kill -9 with {len(jobs)} jobs running: all {len(ids)} SUCCESS {done:.0f}s after the kill")
    assert not revoked, revoked
    assert not lost, states
    # the running jobs finished where they ran and acked after the reconnect (no redelivery, nothing left unacked)
    assert all(sum(deliveries(clean, j).values()) == 1 for j in ids[:6]), {j: deliveries(clean, j) for j in ids}
    wait_for(lambda: clean.valkey.zcard("unacked_index:default") == 0, 15)
    assert clean.valkey.hlen("unacked:default") == 0
    for worker_id in inflight.registered(clean.valkey):
        assert not clean.valkey.scard(inflight.inflight_key(worker_id))
    assert all(p.process is not None and p.process.poll() is None for p in workers), clean.restarts
