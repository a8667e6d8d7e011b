"""``make chaos``: the outbox under fire (issue 16), on PostgreSQL with real relay processes.

A producer commits (and rolls back one in four of) transactions that each ask for one email; meanwhile two
relay processes (``python -m taskfleet_api.outbox``) are SIGKILLed and restarted again and again -- some die
between a publish and its mark -- and Valkey is restarted once. At the end every committed email was sent
exactly once (the SMTP sink counts them), no rolled-back one at all, whatever the duplicate deliveries were.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from taskfleet_data.db import session_for
from taskfleet_data.migrations import upgrade_sync
from taskfleet_data.outbox import OutboxMessage, enqueue_in

from tests.support.environment import applied_env
from tests.support.processes import ServiceProcess, start_worker
from tests.support.smtp_server import SmtpServer
from tests.support.valkey_server import ValkeyServer

TRANSACTIONS = 240
#: A lease short enough that a killed relay's rows come back within the scenario (the production default is 30 s).
LEASE_SECONDS = "3"


def waiting(url: str) -> int:
    async def count() -> int:
        async with session_for(url) as session:
            query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
            return int((await session.execute(query)).scalar_one())

    return asyncio.run(count())


def produce(url: str, addresses: dict[str, bool], done: threading.Event) -> None:
    async def run() -> None:
        for i in range(TRANSACTIONS):
            address = f"chaos-{uuid.uuid4().hex[:10]}@example.test"
            commit = i % 4 != 3
            async with session_for(url) as session:
                await enqueue_in(session, "email.send_email", kwargs={"to": [address], "subject": "c", "text": "c"})
                await (session.commit() if commit else session.rollback())
            addresses[address] = commit
            await asyncio.sleep(0.08)

    try:
        asyncio.run(run())
    finally:
        done.set()


@pytest.mark.timeout(300)
def test_relays_killed_and_valkey_restarted_every_committed_email_once(
    fleet_env: dict[str, str], postgres_server, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database()
    upgrade_sync(url)
    valkey = ValkeyServer(tmp_path / "valkey", appendonly=True).start()
    env = {
        **fleet_env,
        "DATABASE_URL": url,
        "REDIS_URL": valkey.url,
        "OUTBOX_LEASE_SECONDS": LEASE_SECONDS,
        "RATE_LIMIT_TIME_SCALE": "0.02",  # the email queue's 30/min, compressed: the scenario is not about it
    }
    relays: list[ServiceProcess] = []

    def start_relay(ready: bool = False) -> ServiceProcess:
        """A relay process; a replacement is not waited for, so the next kill may find it anywhere."""
        proc = ServiceProcess("taskfleet_api.outbox", tmp_path / f"relay-{len(relays)}.log", env)
        relays.append(proc.start(ready_marker="running" if ready else None))
        return proc

    worker = start_worker("email", env, tmp_path)
    addresses: dict[str, bool] = {}
    done = threading.Event()
    kills = 0
    try:
        with applied_env({"DATABASE_URL": url, "REDIS_URL": valkey.url}):
            live = [start_relay(ready=True), start_relay(ready=True)]
            producer = threading.Thread(target=produce, args=(url, addresses, done))
            producer.start()
            started, restarted = time.monotonic(), False
            while not done.is_set():
                time.sleep(random.uniform(0.3, 1.0))
                working = [p for p in live if "running" in p.log()]  # kill relays at work, not ones starting
                if not working:
                    continue
                victim = random.choice(working)
                live.remove(victim)
                victim.signal(signal.SIGKILL)
                victim.stop()
                kills += 1
                live.append(start_relay())
                if not restarted and time.monotonic() - started > 2:
                    valkey.stop()  # a clean stop: the AOF keeps what was published
                    time.sleep(1)
                    valkey.start()
                    restarted = True
            producer.join()
            deadline = time.monotonic() + 90
            while waiting(url) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert waiting(url) == 0, "committed rows never published"
            committed = [a for a, c in addresses.items() if c]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and any(not smtp_server.handler.to(a) for a in committed):
                time.sleep(0.5)
            time.sleep(3)  # late duplicates would arrive now
    finally:
        for proc in relays:
            proc.stop()
        worker.stop()
        valkey.stop()
    sent = {a: len(smtp_server.handler.to(a)) for a in addresses}
    deliveries = Counter(re.findall(r"Task email\.send_email\[([0-9a-f-]+)\] succeeded", worker.log()))
    duplicated_deliveries = sum(1 for n in deliveries.values() if n > 1)
    print(
        f"\noutbox chaos: {len(committed)} committed, {len(addresses) - len(committed)} rolled back, "
        f"{kills} relay SIGKILLs, 1 Valkey restart, {duplicated_deliveries} job(s) delivered twice, "
        f"{sum(sent.values())} emails, {sum(1 for p in relays if 'running' in p.log())} relays got running"
    )
    assert [a for a in committed if sent[a] != 1] == [], "a committed email missing or sent twice"
    assert [a for a, c in addresses.items() if not c and sent[a]] == [], "a rolled-back email was sent"
