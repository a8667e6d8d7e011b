"""A small HTTP load generator for ``POST /api/v1/jobs``: keep-alive connections on one asyncio loop.

    python bench/loadgen.py --port P --token T --clients 8 --jobs 2000 [--rate R]

Each client is one connection sending its next request when the previous answer arrived (closed loop), or,
with ``--rate``, requests paced over all clients (open loop, for the enqueue -> start latency). Prints JSON:
jobs/s, latency percentiles, non-202 answers and this process's own CPU per request, so the generator's cost is
not mistaken for the API's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any


def request_bytes(port: int, token: str, i: int) -> bytes:
    body = json.dumps({"task": "maintenance.canary", "kwargs": {"payload": {"i": i}}}).encode()
    head = (
        f"POST /api/v1/jobs HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(port: int, token: str, clients: int, jobs: int, rate: float) -> dict[str, Any]:
    latencies: list[float] = []
    sent: list[tuple[str, float]] = []
    errors = 0
    counter = iter(range(jobs))
    t0 = time.perf_counter()

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                if rate:
                    pause = t0 + i / rate - time.perf_counter()
                    if pause > 0:
                        await asyncio.sleep(pause)
                at, started = time.time(), time.perf_counter()
                writer.write(request_bytes(port, token, i))
                status, body = await read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != 202:
                    errors += 1
                elif rate:
                    sent.append((json.loads(body)["id"], at))
        finally:
            writer.close()

    cpu0 = time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    out: dict[str, Any] = {
        "jobs": jobs,
        "per_s": jobs / wall,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": errors,
        "loadgen_cpu_ms_per_req": cpu * 1000 / jobs,
        "loadgen_cpu_share": cpu / wall,
    }
    if rate:
        out["sent"] = sent
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args()
    json.dump(asyncio.run(run(args.port, args.token, args.clients, args.jobs, args.rate)), sys.stdout)


if __name__ == "__main__":
    main()
