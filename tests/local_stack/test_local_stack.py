"""`make up`'s supervised stack, for real: infra/run-local with a subset of its programs on free ports.

The config is the one `make up` renders (infra/supervisord.conf.in through infra/supervisord_conf.py, run by
infra/run-local itself); only the state directory, the ports, the program list and the workers' stop wait
(60 s instead of the hard time limit) differ. Two things are proved:

* a worker killed with SIGKILL (an OOM kill) is restarted by supervisord, and nothing else is touched;
* Ctrl-C (SIGINT to the foreground process group, as a terminal sends it) with a countdown job held by the
  email worker and mails just queued stops the workers before the broker, and afterwards (the broker restarted
  from its AOF) no message sits in any ``unacked``/``unacked_index`` key: every one is back in its queue or done.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import xmlrpc.client
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from supervisor.xmlrpc import SupervisorTransport
from taskfleet_core.broker.keys import SCHEDULED_KEY

from tests.support.ports import free_port
from tests.support.valkey_server import ValkeyServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("valkey", "api", "smtp-sink", "worker-email", "worker-default")
TOKEN = "local-stack-token"


def _free_block(size: int) -> int:
    """A base port with ``size`` consecutive free loopback ports (the metrics ports are base + offsets)."""
    for _ in range(50):
        base = free_port()
        if base + size > 65535:
            continue
        try:
            for port in range(base, base + size):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no block of free ports")


class Stack:
    def __init__(self, var: Path) -> None:
        self.var = var
        self.ports = {name: free_port() for name in ("valkey", "api", "smtp", "feeds", "prometheus")}
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "VIRTUAL_ENV")},
            "TASKFLEET_VAR": str(var),
            "TASKFLEET_PROGRAMS": ",".join(PROGRAMS),
            "VALKEY_PORT": str(self.ports["valkey"]),
            "API_PORT": str(self.ports["api"]),
            "SMTP_PORT": str(self.ports["smtp"]),
            "FEEDS_PORT": str(self.ports["feeds"]),
            "PROMETHEUS_PORT": str(self.ports["prometheus"]),
            "METRICS_PORT_BASE": str(_free_block(8)),
            "WORKER_STOP_WAIT_SECONDS": "60",
            "API_TOKENS": TOKEN,
        }
        self.output = var / "run-local.out"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def broker(self) -> redis.Redis:
        return redis.Redis(port=self.ports["valkey"], decode_responses=True)

    def start(self) -> None:
        self.var.mkdir(parents=True, exist_ok=True)
        with self.output.open("wb") as out:
            # A session of its own, as a terminal's foreground job: Ctrl-C is SIGINT to its process group.
            self.process = subprocess.Popen(
                [str(ROOT / "infra" / "run-local")],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def rpc(self) -> xmlrpc.client.ServerProxy:
        transport = SupervisorTransport(None, None, f"unix://{self.var / 'supervisord.sock'}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def info(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.rpc().supervisor.getAllProcessInfo()}

    def log(self, name: str) -> str:
        path = self.var / "log" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait(self, what: str, check, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.describe("the stack exited")
            try:
                if check():
                    return
            except (OSError, xmlrpc.client.Fault, redis.ConnectionError, httpx.HTTPError):
                pass
            time.sleep(0.5)
        raise AssertionError(self.describe(f"timed out waiting for {what}"))

    def describe(self, message: str) -> str:
        tail = self.output.read_text(errors="replace")[-4000:] if self.output.exists() else ""
        return f"{message}\n--- run-local output (tail) ---\n{tail}"

    def all_running(self) -> bool:
        info = self.info()
        return set(PROGRAMS) <= set(info) and all(info[p]["statename"] == "RUNNING" for p in PROGRAMS)

    def session_processes(self) -> list[psutil.Process]:
        """Every process of the stack's session (supervisord's children get their own process groups)."""
        assert self.process is not None
        found = []
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) == self.process.pid:
                    found.append(proc)
            except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
                continue
        return found

    def cleanup(self, orphans: list[psutil.Process]) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(90)
        leftovers = [*self.session_processes(), *orphans] if self.process is not None else orphans
        for proc in leftovers:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue


def _stopped_at(supervisord_log: str, name: str) -> datetime:
    match = re.search(
        rf"^(\S+ \S+) INFO stopped: {re.escape(name)} \(|^(\S+ \S+) WARN stopped: {re.escape(name)} \(",
        supervisord_log,
        re.M,
    )
    assert match, f"supervisord did not log stopping {name}:\n{supervisord_log}"
    return datetime.strptime(match[1] or match[2], "%Y-%m-%d %H:%M:%S,%f")


def _messages_in_lists(client: redis.Redis) -> dict[str, str]:
    """task id -> the list it waits in, for every message in any list of the broker."""
    where = {}
    for key in client.scan_iter(count=1000):
        if client.type(key) != "list":
            continue
        for raw in client.lrange(key, 0, -1):
            try:
                task_id = json.loads(raw)["headers"]["id"]
            except (ValueError, KeyError, TypeError):
                continue
            where[task_id] = key
    return where


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "var")
    stack.orphans: list[psutil.Process] = []  # type: ignore[misc]
    stack.start()
    try:
        yield stack
    finally:
        stack.cleanup(stack.orphans)  # type: ignore[attr-defined]


def test_supervised_stack_restarts_a_killed_worker_and_drains_before_the_broker_stops(stack: Stack) -> None:
    stack.wait("every program RUNNING", stack.all_running)
    for worker in ("worker-email", "worker-default"):
        stack.wait(f"{worker} ready", lambda w=worker: " ready." in stack.log(w))
    api = httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['api']}", headers={"authorization": f"Bearer {TOKEN}"})
    stack.wait("the API", lambda: api.get("/readyz").status_code == 200)

    # 1. SIGKILL of a worker (an OOM kill): supervisord restarts it, nothing else is touched.
    before = stack.info()
    victim = before["worker-email"]["pid"]
    stack.orphans.extend(psutil.Process(victim).children(recursive=True))  # type: ignore[attr-defined]
    os.kill(victim, signal.SIGKILL)

    def restarted() -> bool:
        info = stack.info()["worker-email"]
        return info["statename"] == "RUNNING" and info["pid"] != victim

    stack.wait("worker-email restarted", restarted)
    stack.wait("the restarted worker-email ready", lambda: stack.log("worker-email").count(" ready.") >= 2)
    after = stack.info()
    for name in PROGRAMS:
        assert after[name]["statename"] == "RUNNING", after[name]
        if name != "worker-email":
            assert after[name]["pid"] == before[name]["pid"], f"{name} was restarted too"
    supervisord_log = (stack.var / "log" / "supervisord.log").read_text()
    assert "exited: worker-email (terminated by SIGKILL; not expected)" in supervisord_log

    # 2. Ctrl-C with a task running, a countdown job waiting in Valkey's schedule and ten mails just queued.
    running = api.post("/api/v1/jobs", json={"task": "maintenance.canary", "kwargs": {"sleep_seconds": 6}})
    assert running.status_code == 202, running.text
    running_id = running.json()["id"]
    broker = stack.broker
    stack.wait("the canary running on worker-default", lambda: broker.zcard("unacked_index:default") >= 1)
    mail = {"to": ["someone@example.com"], "text": "queued at Ctrl-C"}
    later = api.post(
        "/api/v1/jobs", json={"task": "email.send_email", "countdown": 100, "kwargs": {**mail, "subject": "in 100 s"}}
    )
    assert later.status_code == 202, later.text
    later_id = later.json()["id"]
    scheduled = SCHEDULED_KEY.format(queue="email")
    assert broker.zscore(scheduled, later_id) is not None, "a countdown job waits in Valkey, not in a worker"
    mail_ids = []
    for i in range(10):
        response = api.post("/api/v1/jobs", json={"task": "email.send_email", "kwargs": {**mail, "subject": f"#{i}"}})
        assert response.status_code == 202, response.text
        mail_ids.append(response.json()["id"])
    api.close()
    broker.close()

    assert stack.process is not None
    os.killpg(stack.process.pid, signal.SIGINT)
    stack.process.wait(120)

    supervisord_log = (stack.var / "log" / "supervisord.log").read_text()
    broker_stopped = _stopped_at(supervisord_log, "valkey")
    for name in ("worker-email", "worker-default", "api", "smtp-sink"):
        assert _stopped_at(supervisord_log, name) <= broker_stopped, f"{name} stopped after the broker"
    for worker in ("worker-email", "worker-default"):
        assert _stopped_at(supervisord_log, worker) <= _stopped_at(supervisord_log, "api")
        assert "Warm shutdown" in stack.log(worker)
    assert not stack.session_processes(), "processes of the stack outlived it"

    # The broker, restarted from its AOF in the same directory: nothing stranded in flight.
    server = ValkeyServer(stack.var / "redis", appendonly=True).start()
    try:
        client = redis.Redis(port=server.port, decode_responses=True)
        stranded = {
            key: client.hlen(key) if client.type(key) == "hash" else client.zcard(key)
            for key in client.scan_iter("unacked*", count=1000)
            if not key.startswith("unacked_mutex")
        }
        assert not any(stranded.values()), f"messages still in flight after Ctrl-C: {stranded}"
        assert client.zscore(scheduled, later_id) is not None, "the countdown job left the schedule"
        running_meta = client.get(f"celery-task-meta-{running_id}")
        assert running_meta and json.loads(running_meta)["status"] == "SUCCESS", "the running task was not drained"
        waiting = _messages_in_lists(client)
        for task_id in mail_ids:
            meta = client.get(f"celery-task-meta-{task_id}")
            done = meta is not None and json.loads(meta)["status"] == "SUCCESS"
            assert done or task_id in waiting, f"mail {task_id} is neither sent nor waiting in a queue"
        client.close()
    finally:
        server.stop()
