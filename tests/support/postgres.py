"""A real PostgreSQL (Debian package) on a loopback port, owned by the test session.

``initdb`` into a fresh directory and ``postgres`` on a free port, with durability
switched off (fsync, synchronous commit) because the data dies with the session.
PostgreSQL refuses to run as root, so when the tests run as root (CI containers)
the server runs as the ``postgres`` system user (or ``nobody``), in a directory
under /tmp that user owns. ``create_database()`` hands each test its own database.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.ports import free_port

SUPERUSER = "postgres"


def find_bindir() -> Path:
    """The newest installed server's bin directory (``/usr/lib/postgresql/<major>/bin``)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (scripts/bootstrap)")


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.user = _run_as()
        self.port = free_port()
        # not under pytest's tmp dir: its parents are private to root, the server user could not enter them
        self.workdir = Path(tempfile.mkdtemp(prefix="taskfleet-pg-"))
        self.datadir = self.workdir / "data"
        self.process: subprocess.Popen[bytes] | None = None

    def _popen_kwargs(self) -> dict[str, object]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _chown(self) -> None:
        if self.user is None:
            return
        for path in [self.workdir, *self.workdir.rglob("*")]:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30) -> PostgresServer:
        self._chown()
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8"]
            + ["--no-sync", "--no-instructions"],
            check=True,
            capture_output=True,
            env=env,
            cwd=self.workdir,
            **self._popen_kwargs(),  # type: ignore[arg-type]
        )
        log = (self.workdir / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port), "-k", str(self.workdir)]
            + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"]
            + ["-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
            **self._popen_kwargs(),  # type: ignore[arg-type]
        )
        log.close()  # the child has its own descriptor
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER],
                capture_output=True,
            )
            if ready.returncode == 0:
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        path = self.workdir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its async SQLAlchemy URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        asyncio.run(self._execute(f'CREATE DATABASE "{name}"'))
        return self.url(name)

    async def _execute(self, statement: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, database="postgres")
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: ends client sessions, does not wait for them
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)
