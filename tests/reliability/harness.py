"""A whole fleet of real processes for reliability scenarios: redis-server (AOF), SMTP, API, workers, Beat.

Each ``Fleet`` owns its own redis-server and SMTP server, so a scenario can restart or flush
Valkey without disturbing other tests. Workers run with the production visibility timeout (3600 s):
a killed worker's messages come back through the reaper (``WORKER_LOST_SECONDS``, shortened to 10 s
here), and with compressed rate-limit windows (``RATE_LIMIT_TIME_SCALE``).

``kill_pod`` SIGKILLs a worker and its prefork children together, as Kubernetes does to a
container: killing only the parent would leave an orphaned child finishing its task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from aiosmtpd.controller import Controller

from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.redis_server import RedisServer

TOKEN = "chaos-token-0123456789"
FINAL = {"SUCCESS", "FAILURE", "REVOKED"}


@dataclass
class SlowRecordingHandler:
    """SMTP handler recording every accepted message; ``slow*@`` recipients hang in RCPT (mid-task window)."""

    slow_seconds: float = 4.0
    messages: list[tuple[float, str, str]] = field(default_factory=list)  # (time, message-id, to)
    slow_in_progress: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd API)
        if address.split("@", 1)[0].startswith("slow"):
            with self.lock:
                self.slow_in_progress += 1
            await asyncio.sleep(self.slow_seconds)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append((time.time(), str(message["Message-ID"]), ",".join(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def by_message_id(self) -> Counter[str]:
        with self.lock:
            return Counter(mid for _, mid, _ in self.messages)

    def times(self) -> list[float]:
        with self.lock:
            return sorted(t for t, _, _ in self.messages)


class Fleet:
    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        self.redis = RedisServer(workdir / "redis", appendonly=True)
        self.smtp = SlowRecordingHandler()
        self.smtp_port = free_port()
        self.smtp_controller = Controller(self.smtp, hostname="127.0.0.1", port=self.smtp_port)
        self.api_port = free_port()
        self.api_proc: ServiceProcess | None = None
        self.workers: list[ServiceProcess] = []
        self.beat: ServiceProcess | None = None
        self.extra_env = env
        self.http: httpx.Client | None = None
        self.started = 0

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Fleet:
        self.redis.start()
        self.smtp_controller.start()
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis.url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp_port),
            "SMTP_TIMEOUT_SECONDS": "30",
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.workdir / 'fleet.db'}",
            "BEAT_SCHEDULE_FILE": str(self.workdir / "celerybeat-schedule"),
            "WORKER_HEALTH_DIR": str(self.workdir / "health"),
            "API_TOKENS": TOKEN,
            "WORKER_LOST_SECONDS": "10",
            "RATE_LIMIT_TIME_SCALE": "0.1",
            "LOG_LEVEL": "INFO",
            **self.extra_env,
        }
        for inherited in ("METRICS_PORT", "PROMETHEUS_MULTIPROC_DIR"):  # no port clashes between workers
            self.env.pop(inherited, None)
        self.api_proc = ServiceProcess(
            "uvicorn",
            self.workdir / "api.log",
            self.env,
            ("--factory", "taskfleet_api.main:create_api", "--host", "127.0.0.1", "--port", str(self.api_port)),
        ).start(ready_marker="Application startup complete", timeout=60)
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        self.valkey = redis.Redis.from_url(self.redis.url, decode_responses=True)
        self._stopping = threading.Event()
        self.restarts: list[str] = []
        self._orphans: list[psutil.Process] = []
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()
        return self

    def stop(self) -> None:
        """Tear everything down; each step runs even if an earlier one fails, so no process outlives the test."""
        steps = [
            self._stopping.set,
            lambda: self._supervisor.join(30),
            self.stop_workers,
            self._kill_orphans,
            lambda: self.api_proc.stop() if self.api_proc else None,
            lambda: self.http.close() if self.http else None,
            self.smtp_controller.stop,
            self.redis.stop,
        ]
        errors = []
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep tearing down; report at the end
                errors.append(exc)
        if errors:
            raise errors[0]

    def kill(self, proc: ServiceProcess) -> None:
        """SIGKILL a worker pod on purpose (not restarted by the supervisor; the scenario replaces it)."""
        if proc in self.workers:
            self.workers.remove(proc)
        kill_pod(proc)

    def kill_main(self, proc: ServiceProcess) -> None:
        """SIGKILL only a worker's main process (the consumer); its prefork children are left to notice."""
        if proc in self.workers:
            self.workers.remove(proc)
        if proc.process is not None and proc.process.poll() is None:
            children = psutil.Process(proc.process.pid).children(recursive=True)
            proc.process.kill()
            proc.process.wait(10)
            self._orphans.extend(children)

    def kill_children(self, proc: ServiceProcess) -> int:
        """SIGKILL a worker's prefork children (an OOM kill of a task process); the main process lives on."""
        assert proc.process is not None
        children = psutil.Process(proc.process.pid).children(recursive=True)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        return len(children)

    def kill_broker(self, downtime: float) -> float:
        """SIGKILL valkey-server (AOF on), keep it down ``downtime`` s, restart it on the same port and files.
        Returns the wall-clock time of the kill."""
        assert self.redis.process is not None
        killed = time.time()
        self.redis.process.kill()
        self.redis.process.wait(10)
        time.sleep(downtime)
        self.redis.start()
        return killed

    def due_times(self, job_ids: list[str]) -> dict[str, float]:
        """Each job's due time (epoch s) while it waits in a queue's schedule (countdown, deferral, retry)."""
        due: dict[str, float] = {}
        for job_id in job_ids:
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                value = self.http.get(f"/api/v1/jobs/{job_id}").json().get("due_at")  # type: ignore[union-attr]
                if value:
                    due[job_id] = datetime.fromisoformat(value).timestamp()
        return due

    def finished_at(self, job_id: str) -> float | None:
        done = self.result(job_id).get("date_done")
        return datetime.fromisoformat(done).replace(tzinfo=UTC).timestamp() if done else None

    def recovery_after(self, crash: float, job_ids: list[str], due: dict[str, float]) -> float:
        """Seconds past the crash (or past its due time, for work that was not yet due) the last job ran."""
        late = [0.0]
        for job_id in job_ids:
            finished = self.finished_at(job_id)
            if finished is not None:
                late.append(finished - max(crash, due.get(job_id, crash)))
        return max(late)

    def _supervise(self) -> None:
        """restartPolicy: Always -- a worker that exits on its own is started again, and counted."""
        while not self._stopping.wait(1.0):
            for proc in list(self.workers):
                if proc.process is not None and proc.process.poll() is not None and proc in self.workers:
                    self.workers.remove(proc)
                    self.restarts.append(f"{proc.module} exited {proc.process.returncode}")
                    queue = proc.module.rsplit("_", 1)[-1]
                    self.start_workers(queue, 1, *proc.args[2:])

    def _kill_orphans(self) -> None:
        for child in self._orphans:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def stop_workers(self) -> None:
        """Kill every worker and Beat (between scenarios: their jobs are final, nothing is in flight)."""
        victims, self.workers[:] = [*self.workers, self.beat], []
        for proc in victims:
            if proc is not None:
                kill_pod(proc)
        self.beat = None

    def start_workers(self, queue: str, count: int = 1, *extra: str, wait: bool = True) -> list[ServiceProcess]:
        """Start ``count`` workers in parallel and (unless ``wait=False``) wait until each logged ``ready``."""
        procs = []
        for _ in range(count):
            log = self.workdir / f"worker-{queue}-{time.monotonic_ns()}.log"
            self.started += 1
            name = f"{queue}-{self.started}@%h"
            proc = ServiceProcess(f"taskfleet_worker_{queue}", log, self.env, ("--hostname", name, *extra))
            proc.start()
            self.workers.append(proc)
            procs.append(proc)
        for proc in procs if wait else []:
            proc.wait_for("ready.", timeout=90)
        return procs

    def start_beat(self, interval: float = 1.0) -> ServiceProcess:
        env = {**self.env, "BEAT_CANARY_INTERVAL_SECONDS": str(interval)}
        self.beat = ServiceProcess("taskfleet_beat", self.workdir / "beat.log", env).start()
        return self.beat

    # --- jobs ----------------------------------------------------------------------------------
    def submit(self, task: str, **body: Any) -> str | None:
        """The job id if the API accepted the job (202), else None: the caller did not get a promise."""
        try:
            response = self.http.post("/api/v1/jobs", json={"task": task, **body})  # type: ignore[union-attr]
        except httpx.HTTPError:
            return None
        return response.json()["id"] if response.status_code == 202 else None

    def states(self, job_ids: list[str]) -> dict[str, str]:
        """Each job's state from the result backend (PENDING when no result yet)."""
        out: dict[str, str] = {}
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start : start + 500]
            raws = self.valkey.mget([f"celery-task-meta-{j}" for j in chunk])
            for job_id, raw in zip(chunk, raws, strict=True):
                out[job_id] = json.loads(raw)["status"] if raw else "PENDING"
        return out

    def result(self, job_id: str) -> dict[str, Any]:
        raw = self.valkey.get(f"celery-task-meta-{job_id}")
        return json.loads(raw) if raw else {}

    def dead_lettered(self) -> dict[str, dict[str, Any]]:
        """Every DLQ entry, keyed by entry id."""
        from taskfleet_core.reliability.dlq import DeadLetterQueue

        return {e.id: e.__dict__ for e in DeadLetterQueue(self.valkey).iter()}

    def wait_final(self, job_ids: list[str], timeout: float, dlq_counts: bool = True) -> dict[str, str]:
        """Wait until every job is SUCCESS or FAILURE-and-dead-lettered; returns the last states seen."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states(job_ids)
            dlq = self.dead_lettered()
            pending = [j for j, s in states.items() if s != "SUCCESS" and not (s == "FAILURE" and j in dlq)]
            if not pending or time.monotonic() > deadline:
                return states
            time.sleep(0.5)


def kill_pod(proc: ServiceProcess) -> None:
    """SIGKILL a worker and all its children at once (what the kubelet does to a container)."""
    if proc.process is None or proc.process.poll() is not None:
        return
    try:
        parent = psutil.Process(proc.process.pid)
        victims = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.send_signal(signal.SIGKILL)
    proc.process.wait(10)


def max_in_window(times: list[float], window: float) -> int:
    """The most events inside any interval of ``window`` seconds."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@dataclass
class Report:
    """One line of the scenario table."""

    scenario: str
    submitted: int = 0
    succeeded: int = 0
    dead_lettered: int = 0
    missing: int = 0
    duplicated_effects: int = 0
    seconds: float = 0.0
    #: Seconds from the crash until the last job it stranded had run: for each job, the finish time minus the
    #: later of the crash and the job's own due time (a countdown job is not late when it runs when due).
    recovery: float | None = None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def row(self) -> str:
        recovery = "-" if self.recovery is None else f"{self.recovery:.1f}"
        return (
            f"| {self.scenario} | {self.submitted} | {self.succeeded} | {self.dead_lettered} | {self.missing} "
            f"| {self.duplicated_effects} | {recovery} | {self.seconds:.0f} | {self.notes} |"
        )


TABLE_HEADER = (
    "| scenario | submitted | succeeded | dead-lettered | missing | duplicated side effects "
    "| last stranded job ran after (s) | seconds | notes |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def write_report(reports: list[Report], path: Path) -> str:
    text = TABLE_HEADER + "\n" + "\n".join(r.row() for r in reports) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print("\n" + text, file=sys.stderr)
    return text
