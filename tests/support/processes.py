"""Real fleet processes (workers, Beat) started as subprocesses with the test environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class ServiceProcess:
    """A ``python -m <module>`` subprocess whose output goes to a log file the test can read."""

    def __init__(self, module: str, log_path: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.module = module
        self.log_path = log_path
        self.env = env
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_marker: str | None = None, timeout: float = 60) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child has its own descriptor: close the parent's
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        if ready_marker:
            try:
                self.wait_for(ready_marker, timeout)
            except BaseException:
                self.stop()  # a process that never got ready must not outlive the test session
                raise
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.module}: no {text!r} within {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_worker(queue: str, env: dict[str, str], log_dir: Path, *extra: str) -> ServiceProcess:
    """A real prefork worker for ``queue``; returns once it logged ``ready``."""
    module = f"taskfleet_worker_{queue}"
    proc = ServiceProcess(module, log_dir / f"worker-{queue}-{time.monotonic_ns()}.log", env, extra)
    return proc.start(ready_marker="ready.")
