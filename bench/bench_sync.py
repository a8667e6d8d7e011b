"""Sync throughput: grants per second from the recorded feeds, fetched, normalised and stored.

    uv run python bench/bench_sync.py [--rounds 3]

Starts the recorded feed server (``taskfleet_grant_feeds``, the same one the tests use) on a free loopback
port and runs ``sync_source`` for every source with ``full=True``, exactly as ``pipeline.sync_*`` tasks
do, into a fresh migrated SQLite database per round: the first pass of a round inserts, the second finds
every grant unchanged (the daily sync's usual case). HTTP, JSON, normalising, dedup keys and the upserts
are all in the figure; the Celery round trip is not (the drain section measures that).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCES = ("cordis", "eu_portal", "iati", "gcf", "world_bank")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def feed_env(base: str) -> dict[str, str]:
    return {
        "WORLD_BANK_API_URL": f"{base}/worldbank/api/v3/projects",
        "IATI_API_URL": f"{base}/iati/datastore",
        "IATI_API_KEY": "bench-subscription-key",
        "GCF_API_URL": f"{base}/gcf/v1",
        "CORDIS_DATA_URL": f"{base}/cordis/data",
        "EU_PORTAL_API_URL": f"{base}/eu/search-api/prod/rest",
    }


async def one_pass(url: str) -> tuple[int, float]:
    from taskfleet_worker_sync.pipeline import sync_source

    fetched, started = 0, time.perf_counter()
    for source in SOURCES:
        result = await sync_source(source, full=True, database_url=url)
        if result.status != "ok":
            raise SystemExit(f"{source}: {result.error}")
        fetched += result.fetched
    return fetched, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "taskfleet_grant_feeds", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        while "grant feeds serving" not in server.stdout.readline():
            if server.poll() is not None:
                raise SystemExit("the feed server did not start")
        os.environ.update(feed_env(f"http://127.0.0.1:{port}"))
        from taskfleet_data.migrations import upgrade_sync

        inserting, unchanged, grants = [], [], 0
        with tempfile.TemporaryDirectory(prefix="taskfleet-bench-sync-") as tmp:
            for round_ in range(opts.rounds):
                url = f"sqlite+aiosqlite:///{Path(tmp) / f'grants-{round_}.db'}"
                upgrade_sync(url)
                grants, seconds = asyncio.run(one_pass(url))
                inserting.append(grants / seconds)
                grants, seconds = asyncio.run(one_pass(url))
                unchanged.append(grants / seconds)
    finally:
        server.terminate()
        server.wait(10)
    print(f"sources={len(SOURCES)} grants per pass={grants} rounds={opts.rounds} (median)")
    print(f"grants/s, first sync (inserts): {statistics.median(inserting):,.0f}")
    print(f"grants/s, repeated sync (unchanged): {statistics.median(unchanged):,.0f}")


if __name__ == "__main__":
    main()
