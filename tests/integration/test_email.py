"""send_email through a real SMTP server: delivered once, transient errors retried, rejections final."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from taskfleet_core.tasks.app import create_app

from tests.integration.helpers import submit, wait_for_job


@pytest.fixture(scope="module", autouse=True)
def email_worker(workers):
    return workers.ensure("email")


def mail(to: str, **extra) -> dict:
    return {
        "to": [to],
        "subject": f"Deadline in 7 days ({uuid.uuid4().hex[:6]})",
        "text": "plain body",
        "html": "<p>html <b>body</b></p>",
        **extra,
    }


def test_email_arrives_exactly_once_with_text_and_html(api, smtp_server) -> None:
    to = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    job = wait_for_job(api, submit(api, "email.send_email", kwargs=mail(to)))
    assert job["state"] == "SUCCESS", job
    assert job["result"]["accepted"] == [to]
    [message] = smtp_server.handler.to(to)
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(("plain",)).get_content().strip() == "plain body"
    assert "<b>body</b>" in message.get_body(("html",)).get_content()
    assert message["Message-ID"] == job["result"]["message_id"]


def test_rejected_recipient_fails_permanently_without_retry(api, smtp_server, email_worker) -> None:
    to = f"reject-{uuid.uuid4().hex[:8]}@example.com"
    job_id = submit(api, "email.send_email", kwargs=mail(to))
    job = wait_for_job(api, job_id)
    assert job["state"] == "FAILURE"
    assert job["error"]["type"] == "RecipientRejected" and "550" in job["error"]["message"]
    assert job["retries"] == 0
    assert smtp_server.handler.to(to) == []
    assert f"Task email.send_email[{job_id}] retry" not in email_worker.log()


def test_transient_smtp_error_is_retried_then_delivered_once(api, smtp_server) -> None:
    to = f"defer-{uuid.uuid4().hex[:8]}@example.com"
    job = wait_for_job(api, submit(api, "email.send_email", kwargs=mail(to)), timeout=60)
    assert job["state"] == "SUCCESS" and job["retries"] == 1
    assert smtp_server.handler.deferrals[to] == 2
    assert len(smtp_server.handler.to(to)) == 1


def test_same_idempotency_key_sends_once(api, smtp_server) -> None:
    to = f"once-{uuid.uuid4().hex[:8]}@example.com"
    key = f"deadline:{uuid.uuid4().hex}"
    first = wait_for_job(api, submit(api, "email.send_email", kwargs=mail(to, idempotency_key=key)))
    second = wait_for_job(api, submit(api, "email.send_email", kwargs=mail(to, idempotency_key=key)))
    assert first["state"] == second["state"] == "SUCCESS"
    assert second["result"]["duplicate_suppressed"] is True
    assert len(smtp_server.handler.to(to)) == 1


def test_declared_but_unimplemented_contract_is_rejected_loudly(fleet_env) -> None:
    # Every email contract is implemented now, so a worker app built without its task modules
    # (in a subprocess: building an app makes it the current one) stands in for a partial deploy.
    probe = (
        "from taskfleet_core.tasks.worker import create_worker_app\n"
        "app = create_worker_app('email', [])\n"
        "print('missing', ','.join(app.conf.taskfleet_missing))\n"
        "result = app.tasks['email.check_deadline_notifications'].apply(task_id='probe-1')\n"
        "print('state', result.state, type(result.result).__name__, result.result)\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], env=fleet_env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "missing email.check_deadline_notifications,email.send_email" in run.stdout
    assert (
        "state FAILURE ContractNotImplemented rejecting email.check_deadline_notifications (id probe-1)" in run.stdout
    )


def test_malformed_message_fails_naming_the_field_and_the_worker_keeps_going(api, smtp_server) -> None:
    producer = create_app("rogue-producer")  # bypasses the API's validation
    bad = producer.send_task("email.send_email", kwargs={"to": "not-a-list", "subject": "x", "text": "y"})
    with pytest.raises(Exception) as info:
        bad.get(timeout=20)
    assert type(info.value).__name__ == "InvalidTaskArguments" and "to:" in str(info.value)
    to = f"after-{uuid.uuid4().hex[:8]}@example.com"
    assert wait_for_job(api, submit(api, "email.send_email", kwargs=mail(to)))["state"] == "SUCCESS"
