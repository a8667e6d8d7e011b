"""The benchmark suite: fleet vs bare Celery, side by side in one run on one fresh broker, one table of ratios.

    uv run python bench/suite.py [--quick] [--out var/bench/report.md] [--only drain,enqueue,...]

Sections (each bounded in counts and time; ``--quick`` runs small counts, for a smoke check):

* drain     -- a backlog of no-op jobs is enqueued first, then one worker starts and drains it: the fleet worker
               (every feature on) vs bare Celery with the fleet's broker settings vs bare Celery's defaults.
               tasks/s from the results' ``date_done``; worker CPU ms per task from /proc (the whole process
               tree, counted from the moment the backlog is released to the ready worker); RSS after the drain.
* enqueue   -- publishing from one process: the fleet's producer path (API/Beat) vs bare ``send_task``.
* api       -- ``POST /api/v1/jobs`` at 1, 8 and 32 concurrent clients: jobs/s, p50/p99, and the load
               generator's own CPU share (it runs on the same cores).
* latency   -- enqueue -> start at a paced rate, direct and through the API: start is the moment the worker's
               STARTED state is published (a pattern subscription in this process).
* coldstart -- each service's entry point, process start -> ready, median of several runs.
* matching  -- matching scores/s (bench_matching.py on a smaller set).
* sync      -- grants/s synced from the recorded feeds into SQLite, first sync and repeated (bench_sync.py).

Absolute figures depend on the machine and on what else runs on it; ratios measured in one run are the claim.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from tests.support.ports import free_port  # noqa: E402
from tests.support.valkey_server import ValkeyServer  # noqa: E402

TOKEN = "bench-token"
SECTIONS = ("drain", "enqueue", "api", "latency", "coldstart", "matching", "sync")


@dataclass(frozen=True)
class Sizes:
    drain_jobs: int
    enqueue_jobs: int
    api_jobs: int
    api_clients: tuple[int, ...]
    paced_rate: float
    paced_seconds: float
    cold_runs: int
    concurrency: int
    matching: tuple[int, int]
    sync_rounds: int


FULL = Sizes(5000, 5000, 2000, (1, 8, 32), 200, 15, 5, 2, (500, 5000), 3)
QUICK = Sizes(200, 300, 100, (1, 8), 50, 2, 1, 2, (50, 500), 1)


@dataclass
class Table:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, section: str, figure: str, value: str, ratio: str = "") -> None:
        self.rows.append((section, figure, value, ratio))
        print(f"  {section:<10} {figure:<58} {value:>24}  {ratio}", flush=True)

    def markdown(self) -> str:
        lines = ["| section | figure | value | ratio |", "|---|---|---|---|"]
        lines += [f"| {' | '.join(row)} |" for row in self.rows]
        return "\n".join(lines)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


# --- processes ---------------------------------------------------------------------------------------------------


class Proc:
    """A subprocess with its output in a log file; ``wait_for`` polls the log every 10 ms."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.log_path = log
        self.started = time.perf_counter()
        with log.open("ab") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for(self, marker: str | Callable[[], bool], timeout: float = 120) -> float:
        """Seconds from process start until ``marker`` shows in the log (or the callable returns True)."""
        deadline = time.monotonic() + timeout
        while True:
            found = marker() if callable(marker) else marker in self.log_path.read_text(errors="replace")
            if found:
                return time.perf_counter() - self.started
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log_path.name}: exited\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.log_path.name}: not ready\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def tree_cpu(pid: int) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in tree(pid))


def tree_rss_mib(pid: int) -> float:
    return sum(p.memory_info().rss for p in tree(pid)) / 2**20


def tree_pss_mib(pid: int) -> float:
    """Proportional set size: pages a prefork child shares with its parent are counted once, not per process."""
    return sum(p.memory_full_info().pss for p in tree(pid)) / 2**20


@dataclass
class Bench:
    sizes: Sizes
    work: Path
    valkey: ValkeyServer
    env: dict[str, str]
    table: Table = field(default_factory=Table)

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.valkey.url)

    def python(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    def run_json(self, argv: list[str], timeout: float = 600) -> dict[str, Any]:
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv}: {done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def fleet_worker(self, log: str, *extra: str) -> list[str]:
        return self.python("-m", "taskfleet_worker_default", "--concurrency", str(self.sizes.concurrency), *extra)


# --- drain -------------------------------------------------------------------------------------------------------

RESULT_PREFIX = "celery-task-meta-"
COUNT_RESULTS = f"return #redis.call('keys', '{RESULT_PREFIX}*')"


def wait_for_results(r: redis.Redis, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.dbsize() >= n and int(r.eval(COUNT_RESULTS, 0)) >= n:  # type: ignore[no-untyped-call]
            return
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {n} results after {timeout}s")


def drain(b: Bench, label: str, argv: list[str], task: str, queue: str) -> dict[str, float]:
    n = b.sizes.drain_jobs
    r = b.redis
    r.flushall()
    enqueued = b.run_json(
        b.python("-c", ENQUEUE_BACKLOG, b.valkey.url, task, queue, str(n)),
    )
    ids: list[str] = enqueued["ids"]
    held = f"bench:held:{queue}"
    r.rename(queue, held)  # the worker starts on an empty queue: start-up is not part of the drain
    worker = Proc(argv, b.work / f"drain-{label}.log", b.env)
    try:
        worker.wait_for("ready.")
        time.sleep(0.5)  # let start-up work settle (mingle, first heartbeat)
        cpu0 = tree_cpu(worker.pid)
        released = time.time()
        r.rename(held, queue)
        wait_for_results(r, n, timeout=max(120.0, n / 20))
        cpu = tree_cpu(worker.pid) - cpu0
        rss, pss = tree_rss_mib(worker.pid), tree_pss_mib(worker.pid)
    finally:
        worker.stop()
    metas = [json.loads(raw) for raw in r.mget([RESULT_PREFIX + i for i in ids]) if raw]
    ok = sum(1 for m in metas if m.get("status") == "SUCCESS")
    if ok != n:
        raise RuntimeError(f"{label}: {ok} of {n} jobs succeeded")
    last = max(datetime.fromisoformat(m["date_done"]).timestamp() for m in metas)
    return {"tasks_per_s": n / (last - released), "cpu_ms": cpu * 1000 / n, "rss_mib": rss, "pss_mib": pss}


ENQUEUE_BACKLOG = """
import json, sys
from celery import Celery
url, task, queue, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
app = Celery("bench-backlog", broker=url, backend=url)
app.conf.update(task_serializer="json", accept_content=["json"])
with app.producer_or_acquire() as producer:
    ids = [app.send_task(task, kwargs={"payload": {"i": i}}, queue=queue, producer=producer).id for i in range(n)]
json.dump({"ids": ids}, sys.stdout)
"""


def section_drain(b: Bench) -> None:
    conc = ["--concurrency", str(b.sizes.concurrency)]
    celery = ["-m", "celery"]
    variants = {
        "fleet": (b.python("-m", "taskfleet_worker_default", *conc), "maintenance.canary", "default"),
        "bare-same": (
            b.python(*celery, "-A", "bare_app", "worker", "-Q", "default", "-l", "info", *conc),
            "bare.noop",
            "default",
        ),
        "bare-defaults": (
            b.python(*celery, "-A", "bare_defaults", "worker", "-l", "info", *conc),
            "bare.noop",
            "celery",
        ),
    }
    res = {name: drain(b, name, *spec) for name, spec in variants.items()}
    f, s, d = res["fleet"], res["bare-same"], res["bare-defaults"]
    n, c = b.sizes.drain_jobs, b.sizes.concurrency
    sect = f"drain {n}, c={c}"
    for name, fig in res.items():
        b.table.add(sect, f"{name}: tasks/s", f"{fig['tasks_per_s']:,.0f}")
    b.table.add(sect, "fleet / bare-same: throughput", "", ratio(f["tasks_per_s"], s["tasks_per_s"]))
    b.table.add(sect, "fleet / bare-defaults: throughput", "", ratio(f["tasks_per_s"], d["tasks_per_s"]))
    for name, fig in res.items():
        b.table.add(sect, f"{name}: worker CPU ms/task", f"{fig['cpu_ms']:.2f}")
    b.table.add(sect, "fleet / bare-same: CPU per task", "", ratio(f["cpu_ms"], s["cpu_ms"]))
    for name, fig in res.items():
        b.table.add(sect, f"{name}: RSS after drain MiB", f"{fig['rss_mib']:.0f}")
    b.table.add(sect, "fleet / bare-same: RSS", "", ratio(f["rss_mib"], s["rss_mib"]))
    for name, fig in res.items():
        b.table.add(sect, f"{name}: PSS after drain MiB (shared pages counted once)", f"{fig['pss_mib']:.0f}")
    b.table.add(sect, "fleet / bare-same: PSS", "", ratio(f["pss_mib"], s["pss_mib"]))


# --- enqueue -----------------------------------------------------------------------------------------------------


def section_enqueue(b: Bench) -> None:
    n = b.sizes.enqueue_jobs
    res = {}
    for kind in ("fleet", "bare"):
        b.redis.flushall()
        res[kind] = b.run_json(b.python(str(BENCH / "enqueue.py"), kind, "--jobs", str(n)))
    sect = f"enqueue {n}, 1 process"
    b.table.add(sect, "fleet producer (publish + job record): jobs/s", f"{res['fleet']['per_s']:,.0f}")
    b.table.add(sect, "bare send_task: jobs/s", f"{res['bare']['per_s']:,.0f}")
    b.table.add(sect, "fleet / bare: jobs/s", "", ratio(res["fleet"]["per_s"], res["bare"]["per_s"]))
    b.table.add(sect, "fleet producer: CPU ms/job", f"{res['fleet']['cpu_ms_per_job']:.2f}")
    b.table.add(sect, "bare send_task: CPU ms/job", f"{res['bare']['cpu_ms_per_job']:.2f}")
    b.table.add(
        sect, "fleet / bare: CPU per job", "", ratio(res["fleet"]["cpu_ms_per_job"], res["bare"]["cpu_ms_per_job"])
    )


# --- API ---------------------------------------------------------------------------------------------------------


def start_api(b: Bench, log: str) -> tuple[Proc, int]:
    port = free_port()
    api = Proc(b.python("-m", "taskfleet_api", "--port", str(port)), b.work / log, b.env)
    api.wait_for(lambda: _healthy(port))
    return api, port


def _healthy(port: int) -> bool:
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def loadgen(b: Bench, port: int, clients: int, jobs: int, rate: float = 0.0) -> dict[str, Any]:
    argv = [str(BENCH / "loadgen.py"), "--port", str(port), "--token", TOKEN]
    argv += ["--clients", str(clients), "--jobs", str(jobs), "--rate", str(rate)]
    return b.run_json(b.python(*argv))


def section_api(b: Bench) -> None:
    b.redis.flushall()
    api, port = start_api(b, "api.log")
    try:
        loadgen(b, port, 2, 50)  # warm every server process
        for clients in b.sizes.api_clients:
            b.redis.flushall()
            res = loadgen(b, port, clients, b.sizes.api_jobs)
            sect = f"api submit {b.sizes.api_jobs}"
            b.table.add(
                sect,
                f"{clients} clients: jobs/s, p50 / p99 ms",
                f"{res['per_s']:,.0f}  {res['p50_ms']:.1f} / {res['p99_ms']:.1f}",
            )
            b.table.add(
                sect,
                f"{clients} clients: load generator CPU ms/req (share of a core)",
                f"{res['loadgen_cpu_ms_per_req']:.2f} ({res['loadgen_cpu_share']:.0%})",
                f"{res['errors']} errors" if res["errors"] else "",
            )
    finally:
        api.stop()


# --- latency -----------------------------------------------------------------------------------------------------


class StartedListener:
    """Arrival time of each job's STARTED state (the result backend publishes every state it stores)."""

    def __init__(self, url: str) -> None:
        self.pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(f"{RESULT_PREFIX}*")
        self.started: dict[str, float] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stopping = False
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping:
            message = self.pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            at = time.time()
            try:
                meta = json.loads(message["data"])
            except (TypeError, ValueError):
                continue
            if meta.get("status") == "STARTED":
                self.started.setdefault(meta["task_id"], at)

    def close(self) -> None:
        self.stopping = True
        self.thread.join()
        self.pubsub.close()


def latencies_ms(sent: list[list[Any]], started: dict[str, float], timeout: float = 30) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(job_id not in started for job_id, _ in sent):
        time.sleep(0.1)
    return sorted((started[job_id] - at) * 1000 for job_id, at in sent if job_id in started)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def section_latency(b: Bench) -> None:
    rate, secs = b.sizes.paced_rate, b.sizes.paced_seconds
    jobs = int(rate * secs)
    b.redis.flushall()
    listener = StartedListener(b.valkey.url)
    worker = Proc(b.fleet_worker("latency"), b.work / "latency-worker.log", b.env)
    api, port = start_api(b, "latency-api.log")
    try:
        worker.wait_for("ready.")
        loadgen(b, port, 1, 20)  # warm
        direct = b.run_json(b.python(str(BENCH / "enqueue.py"), "fleet", "--jobs", str(jobs), "--rate", str(rate)))
        via_api = loadgen(b, port, 8, jobs, rate)
        sect = f"enqueue->start, {rate:.0f}/s x {secs:.0f}s"
        for name, res in (("direct (fleet producer)", direct), ("through the API", via_api)):
            lat = latencies_ms(res["sent"], listener.started)
            b.table.add(
                sect,
                f"{name}: p50 / p95 / p99 ms",
                f"{pct(lat, 0.5):.1f} / {pct(lat, 0.95):.1f} / {pct(lat, 0.99):.1f}",
                f"{len(lat)} of {jobs} seen",
            )
    finally:
        api.stop()
        worker.stop()
        listener.close()


# --- cold start --------------------------------------------------------------------------------------------------


def section_coldstart(b: Bench) -> None:
    services = {
        "worker-default": (["-m", "taskfleet_worker_default"], "ready."),
        "worker-matching": (["-m", "taskfleet_worker_matching"], "ready."),
        "worker-email": (["-m", "taskfleet_worker_email"], "ready."),
        "worker-sync": (["-m", "taskfleet_worker_sync"], "ready."),
        "beat": (["-m", "taskfleet_beat"], "beat: Starting..."),
        "bare celery worker": (
            ["-m", "celery", "-A", "bare_app", "worker", "-Q", "default", "-c", "2", "-l", "info"],
            "ready.",
        ),
    }
    for name, (args, marker) in services.items():
        times = []
        for run in range(b.sizes.cold_runs):
            proc = Proc(b.python(*args), b.work / f"cold-{name}-{run}.log".replace(" ", "-"), b.env)
            try:
                times.append(proc.wait_for(marker))
            finally:
                proc.stop()
        b.table.add(
            f"cold start, median of {b.sizes.cold_runs}",
            f"{name}: process start -> ready s",
            f"{statistics.median(times):.2f}",
        )


# --- matching ----------------------------------------------------------------------------------------------------


def section_matching(b: Bench) -> None:
    companies, grants = b.sizes.matching
    argv = b.python(str(BENCH / "bench_matching.py"), "--companies", str(companies), "--grants", str(grants))
    out = subprocess.run(argv, env=b.env, capture_output=True, text=True, timeout=600, check=True).stdout
    for line in out.splitlines():
        if line.startswith(("companies/s", "grants/s")):
            figure, _, value = line.partition(": ")
            b.table.add(f"matching {companies}x{grants}", figure, value)


def section_sync(b: Bench) -> None:
    argv = b.python(str(BENCH / "bench_sync.py"), "--rounds", str(b.sizes.sync_rounds))
    out = subprocess.run(argv, env=b.env, capture_output=True, text=True, timeout=600, check=True).stdout
    for line in out.splitlines():
        if line.startswith("sources="):
            per_pass = line.partition("grants per pass=")[2].split()[0]
            section = f"sync {per_pass} grants from the recorded feeds"
        elif line.startswith("grants/s"):
            figure, _, value = line.partition(": ")
            b.table.add(section, figure, value)


RUNNERS: dict[str, Callable[[Bench], None]] = {
    "drain": section_drain,
    "enqueue": section_enqueue,
    "api": section_api,
    "latency": section_latency,
    "coldstart": section_coldstart,
    "matching": section_matching,
    "sync": section_sync,
}


def main(argv: list[str] | None = None) -> Table:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke check, not a measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "report.md")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="taskfleet-bench-") as tmp:
        work = Path(tmp)
        valkey = ValkeyServer(work / "valkey").start()
        env = {
            **os.environ,
            "REDIS_URL": valkey.url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{work}/db.sqlite",
            "API_TOKENS": TOKEN,
            "API_WORKERS": os.environ.get("API_WORKERS", str(os.cpu_count() or 1)),
            "WORKER_HEALTH_DIR": str(work / "health"),
            "BEAT_SCHEDULE_FILE": str(work / "celerybeat-schedule"),
            "PROMETHEUS_MULTIPROC_DIR": "",
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR")
        env.pop("METRICS_PORT", None)
        bench = Bench(sizes, work, valkey, env)
        print(f"taskfleet bench ({'quick' if args.quick else 'full'}): {os.cpu_count()} CPUs, broker {valkey.binary}")
        try:
            for section in sections:
                RUNNERS[section](bench)
        finally:
            valkey.stop()
    elapsed = time.perf_counter() - started
    header = (
        f"`bench/suite.py{' --quick' if args.quick else ''}`, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"{os.cpu_count()} CPUs, {elapsed:.0f} s. Ratios are the claim; absolute figures depend on the machine.\n\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + bench.table.markdown() + "\n")
    print(f"\n{bench.table.markdown()}\n\nwritten to {args.out}")
    return bench.table


if __name__ == "__main__":
    main()
