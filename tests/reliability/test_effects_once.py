"""Effects once when Valkey restarts mid-effect and when an effect outlives its claim (issue 18).

Real processes: a valkey-server of the test's own with AOF on (stopped and started on the same port and files
while the effect runs), and the session's SMTP server receiving real mails built and delivered by the email
worker's code (``build_message``, ``deliver``). Effects are counted where they land: mails at the SMTP server.
Before issue 18 the first test sent 2 mails (the done-record was lost with the restart) and the second ran
the effect twice (the claim expired under it).
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from taskfleet_core.broker.keys import CLAIM_KEY
from taskfleet_core.reliability.idempotency import EffectInProgress, IdempotencyStore, claim_seconds
from taskfleet_core.settings import SmtpSettings, load
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_core.tasks.contracts import SendEmailArgs
from taskfleet_worker_email.smtp import build_message, deliver

from tests.support.smtp_server import SmtpServer
from tests.support.valkey_server import ValkeyServer


@pytest.fixture
def valkey(tmp_path: Path):
    server = ValkeyServer(tmp_path / "valkey", appendonly=True).start()
    yield server
    server.stop()


def mailer(to: str, key: str, before_send: threading.Event | None = None, go: threading.Event | None = None):
    """The email worker's effect: one real mail to ``to``; optionally signals, then waits, before sending."""
    args = SendEmailArgs(to=[to], subject="once", text="exactly once")
    settings = load(SmtpSettings)
    message = build_message(args, settings, key)

    def effect() -> dict[str, Any]:
        if before_send is not None and go is not None:
            before_send.set()
            assert go.wait(10)
        return run_async(lambda: deliver(message, settings))

    return effect


def test_a_valkey_restart_mid_effect_sends_one_mail(valkey: ValkeyServer, smtp_server: SmtpServer) -> None:
    client = redis.Redis.from_url(valkey.url, decode_responses=True)
    store = IdempotencyStore(client, "email")
    to, key = f"restart-{uuid.uuid4().hex[:8]}@example.org", uuid.uuid4().hex
    at_smtp, go = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def original() -> None:
        outcome["result"] = store.run_once(key, mailer(to, key, at_smtp, go), claim_seconds=claim_seconds("email"))
        outcome["finished"] = time.monotonic()

    thread = threading.Thread(target=original)
    thread.start()
    assert at_smtp.wait(10)
    valkey.stop()  # Valkey goes away while the mail is at SMTP: the done-record cannot be written now
    go.set()
    time.sleep(2.0)  # the mail is sent, Valkey is still down
    assert len(smtp_server.handler.to(to)) == 1
    restarted = time.monotonic()
    valkey.start()  # same port, same AOF: the claim is back
    thread.join(30)
    result, duplicate = outcome["result"]
    assert duplicate is False and result["accepted"] == [to]
    assert outcome["finished"] >= restarted  # it waited for Valkey instead of forgetting the mail

    # the redelivered copy (the broker lost the ack with the restart) finds the done-record
    again, duplicate = store.run_once(key, mailer(to, key), claim_seconds=claim_seconds("email"))
    assert duplicate is True and again["message_id"] == result["message_id"]
    assert len(smtp_server.handler.to(to)) == 1
    assert not client.exists(CLAIM_KEY.format(scope="email", key=key))  # released once recorded
    # the second line: any copy of this mail carries the same Message-ID, derived from the idempotency key
    copy = build_message(SendEmailArgs(to=[to], subject="once", text="exactly once"), load(SmtpSettings), key)
    assert copy["Message-ID"] == smtp_server.handler.to(to)[0]["Message-ID"] == result["message_id"]


def test_an_effect_outliving_its_claim_ttl_keeps_the_claim(redis_client: redis.Redis, smtp_server: SmtpServer) -> None:
    """A task whose hard time limit is 1 s: the production margin gives a 2 s claim; the effect takes 3.5 s,
    and copies trying all along are refused because the holder renews the claim every third of its TTL."""
    store = IdempotencyStore(redis_client, "email")
    ttl = claim_seconds("email", time_limit=1)
    assert ttl == 2.0
    to, key = f"slow-{uuid.uuid4().hex[:8]}@example.org", uuid.uuid4().hex
    at_smtp, go = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def original() -> None:
        outcome["result"] = store.run_once(key, mailer(to, key, at_smtp, go), claim_seconds=ttl)

    thread = threading.Thread(target=original)
    thread.start()
    assert at_smtp.wait(10)
    refused = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.75 * ttl:  # well past the TTL
        with pytest.raises(EffectInProgress):
            store.run_once(key, mailer(to, key), claim_seconds=ttl)
        refused += 1
        time.sleep(0.25)
    go.set()
    thread.join(10)
    assert refused >= 12 and outcome["result"][1] is False
    assert store.run_once(key, mailer(to, key), claim_seconds=ttl)[1] is True
    assert len(smtp_server.handler.to(to)) == 1
