"""Email tasks (seed 000 ``email_tasks``)."""

from __future__ import annotations

import logging
from typing import Any

from taskfleet_core.broker.client import client
from taskfleet_core.reliability.idempotency import IdempotencyStore, claim_seconds
from taskfleet_core.settings import SmtpSettings, load
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_core.tasks.contracts import SendEmailArgs
from taskfleet_core.tasks.fleet_task import FleetTask, implements

from taskfleet_worker_email.smtp import build_message, deliver

log = logging.getLogger(__name__)


@implements("email.send_email")
def send_email(task: FleetTask, args: SendEmailArgs) -> dict[str, Any]:
    """Send one email. The same idempotency key (default: the job id, which survives retries
    and redelivery) never sends twice; the Message-ID derived from it is the second line, for the mail
    system downstream to recognise a duplicate."""
    settings = load(SmtpSettings)
    key = args.idempotency_key or task.request.id or "eager"
    sent = IdempotencyStore(client(), "email")
    message = build_message(args, settings, key)
    # run_once also stops a second copy running at the same time (redelivery racing the original); its claim
    # outlives the task's hard time limit and is renewed while the mail is at SMTP
    hard_limit = (task.request.timelimit or (None, None))[0] or task.time_limit
    result, duplicate = sent.run_once(
        key, lambda: run_async(lambda: deliver(message, settings)), claim_seconds=claim_seconds("email", hard_limit)
    )
    if duplicate:
        log.info("email %s already sent as %s; not sending again", key, result.get("message_id"))
        return result | {"duplicate_suppressed": True}
    log.info("sent %s to %s", result["message_id"], ", ".join(result["accepted"]))
    return result
