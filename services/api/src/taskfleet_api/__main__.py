"""``python -m taskfleet_api``: the API server, several processes on one port.

One uvicorn process serves one request at a time in Python; submitting a job is CPU in the API (validation,
FastAPI, Celery's message building) plus Valkey round trips, so throughput scales with processes, not threads.
``API_WORKERS`` (default: the CPUs this process may use, at most ``MAX_DEFAULT_WORKERS``) server processes each
bind the port with ``SO_REUSEPORT`` (the kernel spreads connections over them) and build their app, Celery
producer pool and Valkey client once, at start. This process supervises them: SIGTERM/SIGINT is passed on, a
server that dies is started again.

Not ``uvicorn --workers``: its shared socket is made without ``IPPROTO_TCP``, so asyncio does not set
``TCP_NODELAY`` on the accepted connections and every response waits for the client's delayed ACK (about 40 ms
per request on Linux; measured 20 jobs/s at one client instead of about 300).

With more than one server the metrics are kept in prometheus-client's multiprocess files, so ``/metrics`` on any
of them shows them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

import uvicorn
from taskfleet_core.observability import metrics

#: The default's ceiling: each server process holds the whole API (about 100 MiB); set ``API_WORKERS`` for more.
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    return min(MAX_DEFAULT_WORKERS, len(os.sched_getaffinity(0)))


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket that other server processes may bind too (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # the protocol: see the module doc
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(host: str, port: int, access_log: bool) -> None:
    """One server process."""
    config = uvicorn.Config("taskfleet_api.main:create_api", factory=True, access_log=access_log)
    uvicorn.Server(config).run(sockets=[bind(host, port)])


def supervise(argv: list[str], workers: int, port: int) -> int:
    """Run ``workers`` server processes until SIGTERM/SIGINT; a server that exits on its own is started again."""
    # before the servers import the metrics; one directory per port, so two local stacks never share one
    path = metrics.enable_multiprocess(metrics.default_worker_dir(f"api-{port}"))
    command = [sys.executable, "-m", "taskfleet_api", *argv, "--workers", "1"]
    servers = [subprocess.Popen(command) for _ in range(workers)]
    stopping: list[int] = []

    def stop(signum: int, _: FrameType | None) -> None:
        stopping.append(signum)
        for server in servers:
            if server.poll() is None:
                server.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for i, server in enumerate(servers):
            if server.poll() is not None and not stopping:
                print(f"taskfleet_api: server {server.pid} exited ({server.returncode}); starting another", flush=True)
                metrics.mark_process_dead(server.pid, path)
                servers[i] = subprocess.Popen(command)
        time.sleep(0.5)
    return max((server.wait() or 0) for server in servers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taskfleet_api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("API_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("API_WORKERS", "0")) or default_workers())
    parser.add_argument("--access-log", action="store_true", help="uvicorn's access log (request metrics cover it)")
    args = parser.parse_args(argv)
    if args.workers <= 1:
        serve(args.host, args.port, args.access_log)
        return 0
    passed = ["--host", args.host, "--port", str(args.port), *(["--access-log"] if args.access_log else [])]
    return supervise(passed, args.workers, args.port)


if __name__ == "__main__":
    sys.exit(main())
