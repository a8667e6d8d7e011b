"""The rendered chart's pods run under ``podman kube play``: a job submitted to the API container runs in a worker
container, its mail reaches the SMTP sink, the probes as rendered pass in the running containers, every fleet
container runs non-root on a read-only root filesystem, and a worker pod stopped with its rendered grace period
drains its running task.

Slow (image builds are `make images`, then about two minutes here) and needs root with podman, so opt-in:
``TASKFLEET_KUBE_PLAY=1`` (``make kube-play`` sets it; CI runs it from .ci/run). The images must exist
(``make images``). A report of the run goes to var/kube-play/report.md.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chart.render import REPO
from tests.kube import kubeplay
from tests.kube.kubeplay import PlayPod

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("TASKFLEET_KUBE_PLAY") != "1",
        reason="podman kube play run: set TASKFLEET_KUBE_PLAY=1 (make kube-play)",
    ),
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

TOKEN = "kube-play-token"
REPORT = REPO / "var" / "kube-play" / "report.md"
#: Upper bound of every wait below (a wait, never an assertion on time: a slow machine only waits longer).
PATIENCE = 300.0


def wait_for(what: str, check: Any, patience: float = PATIENCE, every: float = 1.0) -> Any:
    deadline = time.monotonic() + patience
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"gave up waiting for {what} after {patience:.0f} s (last: {last!r})")


def api(pod: PlayPod, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{pod.address}:8000{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 -- the pod's address
        return dict(json.loads(response.read()))


def all_ready(pod: PlayPod) -> bool:
    return all(
        kubeplay.run_probe(pod, container, probes["readinessProbe"])[0]
        for container, probes in pod.probes.items()
        if "readinessProbe" in probes
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PlayPod]]:
    assert shutil.which("podman"), "podman is missing: run scripts/bootstrap-podman (make images does)"
    pods, configmaps, _ = kubeplay.plan()
    missing = [
        c["image"]
        for p in pods
        for c in p.manifest["spec"]["containers"]
        if kubeplay.podman("image", "exists", c["image"], check=False).returncode != 0
    ]
    assert not missing, f"images missing, run `make images` first: {missing}"
    work = tmp_path_factory.mktemp("kube-play")
    by_name = {p.name: p for p in pods}
    kubeplay.remove(pods)
    kubeplay.ensure_network()
    try:
        for name in ("taskfleet-postgres", "taskfleet-smtp-sink", "taskfleet-valkey"):
            kubeplay.play(by_name[name], configmaps, work)
        postgres = by_name["taskfleet-postgres"]
        wait_for(
            "PostgreSQL",
            lambda: (
                kubeplay.podman(
                    "exec", postgres.container("postgres"), "pg_isready", "-q", "-h", "/tmp", check=False
                ).returncode
                == 0
            ),
        )
        wait_for("Valkey readiness", lambda: all_ready(by_name["taskfleet-valkey"]))
        migrate = by_name["taskfleet-migrate"]
        kubeplay.play(migrate, configmaps, work)
        exit_code = kubeplay.podman("wait", migrate.container("migrate"), timeout=PATIENCE).stdout.strip()
        logs = kubeplay.podman("logs", migrate.container("migrate"), check=False)
        assert exit_code == "0", f"migration failed: {logs.stdout}{logs.stderr}"
        for pod in pods:
            if pod.name not in {"taskfleet-postgres", "taskfleet-smtp-sink", "taskfleet-valkey", "taskfleet-migrate"}:
                kubeplay.play(pod, configmaps, work)
        yield by_name
    finally:
        if os.environ.get("TASKFLEET_KUBE_PLAY_KEEP") != "1":
            kubeplay.remove(pods)


FLEET = [
    "taskfleet-valkey",
    "taskfleet-api",
    "taskfleet-beat",
    "taskfleet-queue-exporter",
    "taskfleet-worker-default",
    "taskfleet-worker-matching",
    "taskfleet-worker-email",
    "taskfleet-worker-sync",
]


def test_the_chart_pods_run_and_their_probes_pass_as_rendered(fleet: dict[str, PlayPod]) -> None:
    for name in FLEET:
        wait_for(f"{name} readiness (its rendered readinessProbe)", lambda name=name: all_ready(fleet[name]))
    checked = []
    for name in FLEET:
        pod = fleet[name]
        for container, probes in pod.probes.items():
            assert set(probes) >= {"livenessProbe", "readinessProbe"}, f"{name}/{container} has both probes"
            for kind, probe in probes.items():
                ok, detail = kubeplay.run_probe(pod, container, probe)
                assert ok, f"{name}/{container} {kind}: {detail}"
                checked.append(f"{name}/{container} {kind}")
    assert len(checked) == 2 * len(FLEET)


def test_fleet_containers_run_non_root_on_a_read_only_root(fleet: dict[str, PlayPod]) -> None:
    for name in FLEET:
        for container in fleet[name].manifest["spec"]["containers"]:
            data = kubeplay.inspect(fleet[name].container(container["name"]))
            assert data["State"]["Running"], f"{name} is not running"
            assert data["HostConfig"]["ReadonlyRootfs"] is True, f"{name}: root filesystem is writable"
            user = data["Config"]["User"].split(":")[0]
            assert user not in {"", "0", "root"}, f"{name} runs as {user!r}"
            uid = kubeplay.podman("exec", fleet[name].container(container["name"]), "id", "-u").stdout.strip()
            assert uid == "10001", f"{name} runs as uid {uid}"
            assert data["HostConfig"]["CapDrop"] or not data["EffectiveCaps"], f"{name} keeps capabilities"
            assert not data["EffectiveCaps"], f"{name} has capabilities {data['EffectiveCaps']}"


def test_a_job_submitted_to_the_api_runs_in_a_worker_and_its_mail_reaches_the_sink(fleet: dict[str, PlayPod]) -> None:
    for name in ("taskfleet-api", "taskfleet-worker-email"):
        wait_for(f"{name} readiness", lambda name=name: all_ready(fleet[name]))
    marker = f"kube-play {uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    accepted = api(
        fleet["taskfleet-api"],
        "POST",
        "/api/v1/jobs",
        {"task": "email.send_email", "kwargs": {"to": ["ops@example.com"], "subject": marker, "text": "hello"}},
    )
    assert accepted["queue"] == "email"
    sink = fleet["taskfleet-smtp-sink"].container("smtp")
    wait_for("the mail in the SMTP sink", lambda: marker in kubeplay.podman("logs", sink).stdout)
    to_mail = time.monotonic() - started
    status = wait_for(
        "job SUCCESS",
        lambda: (s := api(fleet["taskfleet-api"], "GET", accepted["status_url"]))["state"] == "SUCCESS" and s,
    )
    worker_logs = kubeplay.podman("logs", fleet["taskfleet-worker-email"].container("worker"))
    assert accepted["id"] in worker_logs.stdout + worker_logs.stderr, "the email worker container ran the job"
    _report(
        "mail",
        f"job {accepted['id']} (email.send_email): accepted by the API pod, {status['state']} "
        f"in taskfleet-worker-email, mail in the SMTP sink {to_mail:.1f} s after the POST",
    )


def test_a_stopped_worker_pod_drains_its_running_task(fleet: dict[str, PlayPod]) -> None:
    pod = fleet["taskfleet-worker-default"]
    wait_for("worker-default readiness", lambda: all_ready(pod))
    accepted = api(
        fleet["taskfleet-api"],
        "POST",
        "/api/v1/jobs",
        {"task": "maintenance.canary", "kwargs": {"steps": 10, "sleep_seconds": 20}},
    )
    wait_for(
        "the canary to start",
        lambda: api(fleet["taskfleet-api"], "GET", accepted["status_url"])["state"] in {"STARTED", "PROGRESS"},
        every=0.2,
    )
    # What the kubelet does on scale-in: SIGTERM to the container, SIGKILL after terminationGracePeriodSeconds (as
    # rendered), and only then the sandbox goes. `podman pod stop` would stop the infra container (the network)
    # alongside, and the draining worker could no longer reach Valkey: stop the container, as the kubelet does.
    kubeplay.podman("stop", "--time", str(pod.grace), pod.container("worker"), timeout=pod.grace + 60)
    data = kubeplay.inspect(pod.container("worker"))
    assert data["State"]["ExitCode"] == 0, f"the worker was killed, not drained: {data['State']}"
    status = api(fleet["taskfleet-api"], "GET", accepted["status_url"])
    assert status["state"] == "SUCCESS", f"the running canary did not finish during the drain: {status}"
    _report(
        "drain",
        f"job {accepted['id']} (maintenance.canary, 20 s) running when `podman stop --time "
        f"{pod.grace}` hit taskfleet-worker-default: SUCCESS, worker exit code 0",
    )


def _report(key: str, line: str) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    lines = dict(x.split(": ", 1) for x in REPORT.read_text().splitlines() if ": " in x) if REPORT.exists() else {}
    lines[key] = line
    REPORT.write_text("".join(f"{k}: {v}\n" for k, v in lines.items()))
    print(f"kube-play {key}: {line}")


def test_report_pods(fleet: dict[str, PlayPod]) -> None:
    ps = kubeplay.podman("pod", "ps", "--format", "{{.Name}} {{.Status}}", "--filter", "name=taskfleet-").stdout
    names = sorted(line.split()[0] for line in ps.splitlines() if line)
    assert set(FLEET) <= set(names)
    _report("pods", " ".join(names))
