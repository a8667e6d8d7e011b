"""The reliability scenarios, sized by the caller: small in the normal suite, large under ``make chaos``.

Each returns a ``Report`` (submitted / succeeded / dead-lettered / missing / duplicated side
effects) and leaves assertions to the caller, so the chaos run can print one table.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import uuid
from typing import Any

from kombu import Connection, Exchange, Producer

from tests.reliability.harness import Fleet, Report, max_in_window


def _email(to: str, key: str | None = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"to": [to], "subject": "reliability", "text": "hello"}
    if key:
        kwargs["idempotency_key"] = key
    return {"kwargs": kwargs}


def _duplicates(fleet: Fleet) -> int:
    return sum(n - 1 for n in fleet.smtp.by_message_id().values() if n > 1)


def _tally(fleet: Fleet, report: Report, ids: list[str], states: dict[str, str]) -> None:
    dlq = fleet.dead_lettered()
    report.submitted = len(ids)
    report.succeeded = sum(1 for j in ids if states[j] == "SUCCESS")
    report.dead_lettered = sum(1 for j in ids if states[j] != "SUCCESS" and j in dlq)
    report.missing = report.submitted - report.succeeded - report.dead_lettered
    report.duplicated_effects = _duplicates(fleet)


def sigkill_mid_task(fleet: Fleet, jobs: int = 2) -> Report:
    """Email jobs hang in SMTP RCPT; the worker pod is SIGKILLed; the reaper hands them to another worker."""
    report, t0 = Report("SIGKILL mid-task (email, redelivery)"), time.monotonic()
    [victim] = fleet.start_workers("email", 1, "--concurrency", str(jobs))
    ids = [fleet.submit("email.send_email", **_email(f"slow-{uuid.uuid4().hex[:8]}@example.com")) for _ in range(jobs)]
    deadline = time.monotonic() + 30
    while fleet.smtp.slow_in_progress < jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    in_flight = fleet.smtp.slow_in_progress
    sent_before_kill = len(fleet.smtp.by_message_id())
    crash = time.time()
    fleet.kill(victim)
    killed = time.monotonic()
    fleet.start_workers("email", 1)
    states = fleet.wait_final([i for i in ids if i], timeout=90)
    _tally(fleet, report, [i for i in ids if i], states)
    report.recovery = fleet.recovery_after(crash, [i for i in ids if i], {})
    report.seconds = time.monotonic() - t0
    report.notes = (
        f"{in_flight} in SMTP when killed, {sent_before_kill} sent before; "
        f"all done {time.monotonic() - killed:.0f}s after the kill "
        f"(reaper, WORKER_LOST_SECONDS={fleet.env.get('WORKER_LOST_SECONDS', 'default')})"
    )
    return report


def sigterm_mid_task(fleet: Fleet, prefetched: int = 3) -> Report:
    """Scale-in: SIGTERM while one job runs and others sit prefetched; the runner finishes, the rest move."""
    report, t0 = Report("SIGTERM mid-task (scale-in, warm shutdown)"), time.monotonic()
    [stopping] = fleet.start_workers("default", 1, "--concurrency", "1", "--prefetch-multiplier", str(1 + prefetched))
    long_id = fleet.submit("maintenance.canary", kwargs={"steps": 5, "sleep_seconds": 5})
    quick = [fleet.submit("maintenance.canary", kwargs={"steps": 1}) for _ in range(prefetched)]
    ids = [long_id, *quick]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reserved = fleet.valkey.zcard("unacked_index:default")
        if fleet.result(long_id).get("status") in {"STARTED", "PROGRESS"} and reserved >= 1 + prefetched:
            break
        time.sleep(0.05)
    fleet.workers.remove(stopping)  # scaled in: Kubernetes does not restart it
    stopping.signal(signal.SIGTERM)
    term_at = time.monotonic()
    [other] = fleet.start_workers("default", 1)
    exit_code = stopping.process.wait(60) if stopping.process else None
    stop_seconds = time.monotonic() - term_at
    states = fleet.wait_final(ids, timeout=60)
    _tally(fleet, report, ids, states)
    ran_on = {j: (fleet.result(j).get("worker") or "?").split("@")[0] for j in ids}
    report.seconds = time.monotonic() - t0
    report.notes = (
        f"running job finished on the stopping worker ({ran_on[long_id]}), which exited {exit_code} "
        f"{stop_seconds:.1f}s after SIGTERM; {sum(1 for j in quick if ran_on[j] != ran_on[long_id])} of "
        f"{prefetched} prefetched ran on another worker"
    )
    report.details = {"long_worker": ran_on[long_id], "quick_workers": [ran_on[j] for j in quick]}
    return report


def redis_restart(
    fleet: Fleet, seconds: float = 12, rate: float = 10, downtime: float = 2, hard: bool = False
) -> Report:
    """Jobs submitted at a steady rate while Valkey (AOF) restarts -- cleanly, or ``hard``: kill -9 -- then a
    FLUSHDB with publishes after it. A broker loss must never end a job: none REVOKED, none lost."""
    title = "Valkey kill -9 under load (AOF everysec, + FLUSHDB)" if hard else "Valkey restart under load (+ FLUSHDB)"
    report, t0 = Report(title), time.monotonic()
    fleet.start_workers("default", 1)
    fleet.start_beat(interval=1)
    accepted: list[str] = []
    refused = 0
    stop = threading.Event()

    def submitter() -> None:
        nonlocal refused
        while not stop.is_set():
            job = fleet.submit("maintenance.canary", kwargs={"steps": 1, "sleep_seconds": 0.05})
            if job:
                accepted.append(job)
            else:
                refused += 1
            time.sleep(1 / rate)

    thread = threading.Thread(target=submitter, daemon=True)
    thread.start()
    time.sleep(seconds / 3)
    if hard:
        before_crash = list(accepted)
        crash = fleet.kill_broker(downtime)
    else:
        before_crash = list(accepted)
        crash = time.time()
        fleet.redis.stop()
        time.sleep(downtime)
        fleet.redis.start()
    restarted = time.time()
    time.sleep(seconds * 2 / 3)
    stop.set()
    thread.join(30)
    states = fleet.wait_final(accepted, timeout=120)
    beat_after = _beat_runs_since(fleet, restarted)

    # Valkey data loss: kombu's binding keys vanish; publishes must still reach the queue.
    fleet.valkey.flushdb()
    after_flush = [j for j in (fleet.submit("maintenance.canary", kwargs={"steps": 1}) for _ in range(5)) if j]
    flush_states = fleet.wait_final(after_flush, timeout=60)
    ids = accepted + after_flush
    states |= flush_states
    report.submitted = len(ids)
    report.succeeded = sum(1 for j in ids if states.get(j) == "SUCCESS")
    report.missing = report.submitted - report.succeeded
    report.recovery = fleet.recovery_after(crash, before_crash, {})
    revoked = sum(1 for j in ids if states.get(j) == "REVOKED")
    report.seconds = time.monotonic() - t0
    report.notes = (
        f"REVOKED: {revoked}; "
        f"{refused} submissions refused while down (not accepted, client retried); "
        f"worker crashes restarted: {len(fleet.restarts)}; "
        f"Beat health checks run after restart: {beat_after}; "
        f"{sum(1 for j in after_flush if flush_states[j] == 'SUCCESS')}/{len(after_flush)} done after FLUSHDB"
    )
    report.details = {"beat_after": beat_after, "restarts": list(fleet.restarts), "revoked": revoked}
    return report


def sigkill_with_delayed_work(fleet: Fleet, mails: int = 40, countdowns: int = 4, mode: str = "pod") -> Report:
    """Workers die while holding every kind of not-yet-due work: countdown mails, rate-limit deferrals (a burst
    beyond the fleet-wide limit) and a retrying job in its backoff. ``mode``: ``pod`` kills each worker with its
    children (the kubelet), ``main`` only the consuming main process (its children are orphaned). Nothing may
    wait for the visibility timeout (3600 s here): every job runs within the reaper's time of the crash, or when
    it falls due."""
    report = Report(f"SIGKILL ({mode}) holding countdown, deferred and retrying work")
    t0 = time.monotonic()
    [email] = fleet.start_workers("email", 1)
    [default] = fleet.start_workers("default", 1)
    ids = [
        fleet.submit("email.send_email", countdown=15, **_email(f"later-{i}@example.com")) for i in range(countdowns)
    ]
    ids += [fleet.submit("email.send_email", **_email(f"burst-{i}@example.com")) for i in range(mails)]
    ids.append(fleet.submit("maintenance.canary", kwargs={"fail_attempts": 2, "steps": 1}))
    ids.append(fleet.submit("maintenance.canary", kwargs={"steps": 4, "sleep_seconds": 3}))  # running at the kill
    ids = [i for i in ids if i]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # some deferred by the limiter, the slow canary running
        by_queue = {q["name"]: q for q in fleet.http.get("/api/v1/queues").json()}  # type: ignore[union-attr]
        if by_queue["email"]["scheduled"] > countdowns and by_queue["default"]["in_flight"] >= 1:
            break
        time.sleep(0.2)
    due = fleet.due_times(ids)
    crash = time.time()
    for worker in (email, default):
        (fleet.kill_main if mode == "main" else fleet.kill)(worker)
    fleet.start_workers("email", 1)
    fleet.start_workers("default", 1)
    states = fleet.wait_final(ids, timeout=150)
    _tally(fleet, report, ids, states)
    report.recovery = fleet.recovery_after(crash, ids, due)
    report.seconds = time.monotonic() - t0
    report.notes = f"{len(due)} jobs waiting in Valkey's schedule at the kill; visibility timeout 3600 s"
    return report


def sigkill_children(fleet: Fleet, jobs: int = 2) -> Report:
    """An OOM kill of the task processes only: the main process sees WorkerLostError and, with
    ``task_reject_on_worker_lost``, puts the messages back at once; a new child runs them."""
    report, t0 = Report("SIGKILL of the prefork children mid-task"), time.monotonic()
    [worker] = fleet.start_workers("default", 1, "--concurrency", str(jobs))
    ids = [fleet.submit("maintenance.canary", kwargs={"steps": 3, "sleep_seconds": 3}) for _ in range(jobs)]
    ids = [i for i in ids if i]
    deadline = time.monotonic() + 30
    while fleet.valkey.zcard("unacked_index:default") < len(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # inside the tasks
    crash = time.time()
    killed = fleet.kill_children(worker)
    states = fleet.wait_final(ids, timeout=90)
    _tally(fleet, report, ids, states)
    report.recovery = fleet.recovery_after(crash, ids, {})
    report.seconds = time.monotonic() - t0
    report.notes = f"{killed} child processes killed; the main process lived on"
    return report


def _beat_runs_since(fleet: Fleet, since: float, wait: float = 20) -> int:
    """Beat-sent health checks that finished after ``since``: Beat and the worker both reconnected."""
    deadline = time.monotonic() + wait
    while True:
        count = 0
        for key in fleet.valkey.scan_iter("celery-task-meta-*", count=1000):
            raw = fleet.valkey.get(key)
            meta = json.loads(raw) if raw else {}
            done = meta.get("date_done") or ""
            if meta.get("name") == "maintenance.health_check" and done:
                from datetime import datetime

                if datetime.fromisoformat(done).timestamp() > since:
                    count += 1
        if count or time.monotonic() > deadline:
            return count
        time.sleep(1)


def publish_poison(fleet: Fleet) -> dict[str, str]:
    """Messages no worker can run, published the way a buggy or foreign producer would. Returns kind -> id."""
    ids = {"unknown": uuid.uuid4().hex, "bad_json": uuid.uuid4().hex, "pickle": uuid.uuid4().hex}
    ids["invalid_args"] = uuid.uuid4().hex
    exchange = Exchange("default", type="direct")
    with Connection(fleet.redis.url) as conn:
        producer = Producer(conn)
        common = {"exchange": exchange, "routing_key": "default"}

        def task_headers(name: str, job_id: str) -> dict[str, Any]:
            return {"lang": "py", "task": name, "id": job_id, "root_id": job_id, "retries": 0}

        producer.publish(
            [[], {"a": 1}, {}], headers=task_headers("nobody.knows", ids["unknown"]), serializer="json", **common
        )
        producer.publish({"no": "headers"}, serializer="json", **common)
        producer.publish(
            "{not json",
            content_type="application/json",
            content_encoding="utf-8",
            headers=task_headers("maintenance.canary", ids["bad_json"]),
            **common,
        )
        producer.publish(
            b"\x80\x04K\x01.",
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers=task_headers("maintenance.canary", ids["pickle"]),
            **common,
        )
        producer.publish(
            [[], {"steps": "many"}, {}],
            headers=task_headers("maintenance.canary", ids["invalid_args"]),
            serializer="json",
            **common,
        )
    fleet.valkey.lpush("default", "this is not a kombu envelope")
    return ids


def poison_and_unknown(fleet: Fleet, good_jobs: int = 5) -> tuple[Report, dict[str, Any]]:
    """Poison and unknown-task messages land in the DLQ and the worker keeps consuming."""
    report, t0 = Report("poison + unknown-task messages"), time.monotonic()
    [worker] = fleet.start_workers("default", 1)
    pid = worker.process.pid if worker.process else None
    poison = publish_poison(fleet)
    permanent = fleet.submit("maintenance.canary", kwargs={"fail_permanently": True})
    exhausted = fleet.submit("maintenance.canary", kwargs={"fail_attempts": 10})
    good = [fleet.submit("maintenance.canary", kwargs={"steps": 1}) for _ in range(good_jobs)]
    ids = [j for j in [permanent, exhausted, *good] if j]
    states = fleet.wait_final(ids, timeout=90)
    deadline = time.monotonic() + 20
    while len(fleet.dead_lettered()) < len(poison) + 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    dlq = fleet.dead_lettered()
    _tally(fleet, report, ids, states)
    report.submitted += len(poison) + 2  # plus the message without headers and the raw list item
    report.dead_lettered = len(dlq)
    report.missing = report.submitted - report.succeeded - report.dead_lettered
    alive = worker.process is not None and worker.process.poll() is None and worker.process.pid == pid
    report.seconds = time.monotonic() - t0
    reasons: dict[str, int] = {}
    for entry in dlq.values():
        reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
    report.notes = f"worker alive and consuming: {alive}; DLQ by reason: {reasons}"
    return report, {"poison": poison, "permanent": permanent, "exhausted": exhausted, "alive": alive, "dlq": dlq}


def rate_limited_emails(fleet: Fleet, emails: int = 45, workers: int = 3, window: float = 6.0) -> Report:
    """Three email workers, one fleet-wide limit of 30 per window (compressed minute)."""
    report, t0 = Report(f"3 email workers, fleet-wide 30/{window:g}s (30/min compressed)"), time.monotonic()
    fleet.start_workers("email", workers)
    start = time.time()
    ids = [fleet.submit("email.send_email", **_email(f"user{i}@example.com")) for i in range(emails)]
    ids = [i for i in ids if i]
    states = fleet.wait_final(ids, timeout=max(60, emails / 30 * window * 3))
    _tally(fleet, report, ids, states)
    times = [t for t in fleet.smtp.times() if t >= start]
    # The limiter grants task starts; the SMTP server sees the send up to ~1 s later, which in a compressed
    # window shows as a small overshoot at the edges. So: peak over (window - 1 s), and the raw peak too.
    peak = max_in_window(times, window - 1.0)
    raw_peak = max_in_window(times, window)
    span = times[-1] - times[0] if times else 0
    report.seconds = time.monotonic() - t0
    report.notes = (
        f"peak {peak} sends in any {window - 1:g}s window, {raw_peak} in any {window:g}s (limit 30 per {window:g}s"
        f" of task starts); {len(times)} sends over {span:.1f}s"
    )
    report.details = {"peak": peak, "raw_peak": raw_peak, "span": span, "sends": len(times)}
    return report


def load_with_kills(
    fleet: Fleet, jobs: int = 150, kill_every: float = 8.0, default_workers: int = 2, timeout: float = 240
) -> Report:
    """Mixed jobs (canaries that succeed, retry or fail for good; emails; poison) while worker pods get SIGKILLed."""
    report, t0 = Report(f"{jobs} mixed jobs, random worker SIGKILLs"), time.monotonic()
    fleet.start_workers("default", default_workers)
    fleet.start_workers("email", 1)
    rng = random.Random(7)
    plan: list[tuple[str, dict[str, Any]]] = []
    for i in range(jobs):
        roll = rng.random()
        if roll < 0.05:
            plan.append(("email.send_email", _email(f"load{i}@example.com", key=f"load-{i}")))
        elif roll < 0.08:
            plan.append(("maintenance.canary", {"kwargs": {"fail_permanently": True}}))
        elif roll < 0.15:
            plan.append(("maintenance.canary", {"kwargs": {"fail_attempts": 1}}))
        else:
            sleep = round(rng.uniform(0, 0.2), 3)
            plan.append(("maintenance.canary", {"kwargs": {"steps": 1, "sleep_seconds": sleep}}))
    accepted: list[str] = []
    kills = 0
    done = threading.Event()

    def killer() -> None:
        nonlocal kills
        while not done.wait(kill_every):
            alive = [w for w in fleet.workers if w.process is not None and w.process.poll() is None]
            if not alive:
                continue
            victim = rng.choice(alive)
            queue = victim.module.rsplit("_", 1)[-1]
            fleet.kill(victim)
            kills += 1
            fleet.start_workers(queue, 1, wait=False)  # a new pod starts while the others carry on

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    for task, body in plan:
        job = fleet.submit(task, **body)
        if job:
            accepted.append(job)
    poison = publish_poison(fleet)
    time.sleep(kill_every * 1.5)  # at least one kill while the backlog drains
    states = fleet.wait_final(accepted, timeout=timeout)
    done.set()
    thread.join(120)
    _tally(fleet, report, accepted, states)
    dlq = fleet.dead_lettered()
    report.notes = (
        f"{kills} worker pods SIGKILLed and replaced, {len(fleet.restarts)} crashed and restarted; "
        f"{len(poison) + 2} poison messages also dead-lettered: "
        f"{sum(1 for e in dlq.values() if e['job_id'] not in set(accepted))}"
    )
    report.seconds = time.monotonic() - t0
    return report


def poison_pill_redeliveries(fleet: Fleet, copies: int = 12) -> dict[str, Any]:
    """A message kombu keeps restoring (it killed its worker each time) stops at the redelivery limit."""
    job = fleet.submit("maintenance.canary", kwargs={"steps": 1})  # no worker yet: it waits in the list
    raw = fleet.valkey.rpop("default")
    envelope = json.loads(raw)
    envelope["headers"]["redelivered"] = True
    envelope["properties"]["delivery_info"]["redelivered"] = True
    fleet.valkey.lpush("default", *[json.dumps(envelope)] * copies)
    fleet.start_workers("default", 1, "--concurrency", "1")
    deadline = time.monotonic() + 60
    entry = None
    while time.monotonic() < deadline:
        entry = fleet.dead_lettered().get(job or "")
        if entry and entry["times_dead_lettered"] >= copies - 10 and fleet.valkey.llen("default") == 0:
            break
        time.sleep(0.2)
    return {"job": job, "entry": entry}


def duplicate_deliveries(fleet: Fleet, copies: int = 3) -> Report:
    """One email job's message delivered several times at once (a lost ack, a visibility-timeout redelivery)."""
    report, t0 = Report(f"same email message delivered {copies}x at once"), time.monotonic()
    job = fleet.submit("email.send_email", **_email(f"dup-{uuid.uuid4().hex[:8]}@example.com"))
    envelope = json.loads(fleet.valkey.rpop("email"))  # no email worker yet: take the message back
    copies_json = []
    for _ in range(copies):  # distinct delivery tags, as kombu gives every (re)delivery
        envelope["properties"]["delivery_tag"] = uuid.uuid4().hex
        copies_json.append(json.dumps(envelope))
    fleet.valkey.lpush("email", *copies_json)
    fleet.start_workers("email", 1, "--concurrency", str(copies))
    states = fleet.wait_final([job] if job else [], timeout=90)
    _tally(fleet, report, [job] if job else [], states)
    report.submitted = copies
    sent = sum(fleet.smtp.by_message_id().values())
    report.seconds = time.monotonic() - t0
    report.notes = f"{copies} deliveries of one job, {sent} email sent; the copies found the claim or the result"
    report.details = {"sent": sent}
    return report
