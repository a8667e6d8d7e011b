"""Issue 13's reproductions: no input reaches a 500 or a worker unchecked.

Each bad request is refused at submit with a 422 (or 415) that names the field; the stored
arguments and result of an accepted job are always readable back; an internationalised address
is sent with SMTPUTF8 when the server offers it and fails permanently (no retry loop) when not.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiosmtpd.controller import Controller
from taskfleet_core.settings import SmtpSettings
from taskfleet_core.tasks.contracts import CONTRACTS, DEFAULT_MAX_BODY_BYTES, SendEmailArgs
from taskfleet_core.tasks.errors import PermanentError
from taskfleet_worker_email.smtp import AddressNotSupported, build_message, deliver

from tests.integration.helpers import submit, wait_for_job
from tests.support.ports import free_port

JSON = {"content-type": "application/json"}


def post_raw(api, raw: bytes | str, path: str = "/api/v1/jobs", headers: dict[str, str] | None = None):
    return api.post(path, content=raw.encode() if isinstance(raw, str) else raw, headers=headers or JSON)


def locs(response) -> list[list]:
    return [e["loc"] for e in response.json()["detail"]]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_countdown_is_422_naming_it(api, number) -> None:
    response = post_raw(api, f'{{"task": "maintenance.canary", "countdown": {number}}}')
    assert response.status_code == 422, response.text
    assert locs(response) == [["body", "countdown"]]
    assert "finite" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ('{"task": "email.send_email", "kwargs": {"subject": "bad \\ud800"}}', ["body", "kwargs", "subject"]),
        ('{"task": "maintenance.canary", "kwargs": {"payload": {"k": "\\ud800"}}}', ["body", "kwargs", "payload", "k"]),
        (
            '{"task": "maintenance.canary", "kwargs": {"payload": {"k": [1, NaN]}}}',
            ["body", "kwargs", "payload", "k", 1],
        ),
    ],
)
def test_lone_surrogates_and_nan_anywhere_are_422_at_their_place(api, raw, loc) -> None:
    response = post_raw(api, raw)
    assert response.status_code == 422, response.text
    assert locs(response) == [loc]


def test_lone_surrogate_in_a_company_name_is_422(api) -> None:
    response = post_raw(api, '{"name": "Acme \\udfff"}', path="/api/v1/companies")
    assert response.status_code == 422 and locs(response) == [["body", "name"]]


def test_invalid_utf8_and_deep_nesting_are_422_not_400(api) -> None:
    bad = post_raw(api, b'{"task": "maintenance.canary\xff"}')
    assert bad.status_code == 422 and "UTF-8" in bad.json()["detail"][0]["msg"]
    deep = post_raw(api, '{"task": "maintenance.canary", "kwargs": {"payload": ' + "[" * 5000 + "]" * 5000 + "}}")
    assert deep.status_code == 422 and "deeper" in deep.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("text/plain", '{"task": "maintenance.canary"}'),
        ("application/x-www-form-urlencoded", "task=maintenance.canary"),
        ("application/xml", "<job><task>maintenance.canary</task></job>"),
    ],
)
def test_non_json_bodies_are_415(api, content_type, raw) -> None:
    for path in ("/api/v1/jobs", "/api/v1/companies", "/api/v1/users"):
        response = post_raw(api, raw, path=path, headers={"content-type": content_type})
        assert response.status_code == 415, (path, response.text)


@pytest.mark.parametrize(
    ("kwargs", "loc"),
    [
        ({"subject": "hi\r\nBcc: victim@example.com"}, ["body", "kwargs", "subject"]),
        ({"subject": "hi\u0000there"}, ["body", "kwargs", "subject"]),
        ({"idempotency_key": "k\nX-Evil: 1"}, ["body", "kwargs", "idempotency_key"]),
        ({"text": "x" * 24_001}, ["body", "kwargs", "text"]),
    ],
)
def test_header_injection_and_oversized_mail_fields_are_422(api, kwargs, loc) -> None:
    body = {"to": ["a@example.com"], "subject": "s", "text": "t", **kwargs}
    response = api.post("/api/v1/jobs", json={"task": "email.send_email", "kwargs": body})
    assert response.status_code == 422, response.text
    assert locs(response) == [loc]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"task": "maintenance.canary", "priority": True}, ["body", "priority"]),
        ({"task": "maintenance.canary", "countdown": "10"}, ["body", "countdown"]),
        ({"task": "maintenance.canary", "countdown": True}, ["body", "countdown"]),
        ({"task": "maintenance.canary", "kwargs": {"steps": "2"}}, ["body", "kwargs", "steps"]),
        ({"task": "maintenance.canary", "kwargs": {"fail_permanently": 1}}, ["body", "kwargs", "fail_permanently"]),
        (
            {"task": "email.check_deadline_notifications", "kwargs": {"windows_days": [7, 0]}},
            ["body", "kwargs", "windows_days", 1],
        ),
    ],
)
def test_no_lax_coercion(api, body, loc) -> None:
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    assert loc in locs(response)


def test_windows_days_are_bounded(api) -> None:
    body = {"task": "email.check_deadline_notifications", "kwargs": {"windows_days": [-5, 0, 100000000]}}
    response = api.post("/api/v1/jobs", json=body)
    assert response.status_code == 422
    assert locs(response) == [["body", "kwargs", "windows_days", i] for i in range(3)]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": "Acme", "active": 0}, "active"), ({"name": "Acme", "sectors": ["a\u0000b"]}, "sectors")],
)
def test_company_fields_are_strict(api, body, field) -> None:
    response = api.post("/api/v1/companies", json=body)
    assert response.status_code == 422, response.text
    assert locs(response)[0][:2] == ["body", field]


def test_user_min_alert_score_is_not_a_bool(api) -> None:
    body = {"email": "x@i5.a.test", "company_id": 1, "min_alert_score": False}
    response = api.post("/api/v1/users", json=body)
    assert response.status_code == 422 and locs(response) == [["body", "min_alert_score"]]


def test_spec_states_what_is_refused(api) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["JobRequest"]["not"]["required"] == ["countdown", "eta"]  # mutually exclusive, said so
    assert schemas["CompanyIn"]["properties"]["name"]["pattern"] == "^[^\\x00]*$"
    email_schema = {s["args_schema"]["title"]: s for s in api.get("/api/v1/tasks").json()}
    subject = email_schema["SendEmailArgs"]["args_schema"]["properties"]["subject"]
    assert subject["pattern"] == "^[^\\x00\\r\\n]*$"


def test_contract_size_limits_fit_the_body_limit() -> None:
    """A mail at every length limit (ASCII) still fits the default body limit: a 413 never hides a valid mail."""
    schema = SendEmailArgs.model_json_schema()["properties"]
    longest = {
        "to": ["a" * 64 + "@" + "b" * 60 + ".example"] * schema["to"]["maxItems"],
        "subject": "s" * schema["subject"]["maxLength"],
        "text": "t" * schema["text"]["maxLength"],
        "html": "h" * schema["html"]["anyOf"][0]["maxLength"],
        "idempotency_key": "k" * schema["idempotency_key"]["anyOf"][0]["maxLength"],
    }
    body = json.dumps({"task": "email.send_email", "kwargs": longest}).encode()
    assert len(body) <= DEFAULT_MAX_BODY_BYTES, len(body)
    assert CONTRACTS["email.send_email"].validate((), longest)


def test_stored_arguments_and_result_read_back(api, workers) -> None:
    workers.ensure("default")
    payload = {"unicode": "jörg ☃ 𝄞", "nested": [1, 2.5, {"x": None}], "big": 2**70}
    job = wait_for_job(api, submit(api, "maintenance.canary", kwargs={"payload": payload}))
    assert job["state"] == "SUCCESS" and job["result"]["payload"] == payload


# --- internationalised addresses --------------------------------------------------------------------------


def test_idn_address_is_accepted_and_delivered_with_smtputf8(api, workers, smtp_server) -> None:
    """The session's sink offers SMTPUTF8 (aiosmtpd's default): the mail arrives, first time, no retry."""
    workers.ensure("email")
    to = f"jörg-{uuid.uuid4().hex[:6]}@bücher.example"
    job = wait_for_job(api, submit(api, "email.send_email", kwargs={"to": [to], "subject": "Hallo", "text": "Grüße"}))
    assert job["state"] == "SUCCESS", job
    assert job["result"]["accepted"] == [to] and job["retries"] == 0
    [message] = smtp_server.handler.to(to)
    assert message.get_content().strip() == "Grüße"


class _Sink:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.mark.parametrize("smtputf8", [True, False])
def test_idn_address_is_sent_with_smtputf8_when_offered(smtputf8: bool) -> None:
    sink = _Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        settings = SmtpSettings(smtp_host="127.0.0.1", smtp_port=port)
        args = SendEmailArgs(to=["jörg@bücher.example"], subject="Grüße", text="Hallo Jörg")
        message = build_message(args, settings, "idn-test")
        if smtputf8:
            result = asyncio.run(deliver(message, settings))
            assert result["accepted"] == ["jörg@bücher.example"]
            [envelope] = sink.envelopes
            assert envelope.rcpt_tos == ["jörg@bücher.example"] and "SMTPUTF8" in envelope.mail_options
        else:
            with pytest.raises(AddressNotSupported) as raised:
                asyncio.run(deliver(message, settings))
            assert isinstance(raised.value, PermanentError) and sink.envelopes == []
    finally:
        controller.stop()


def test_a_stored_result_a_worker_wrote_with_nan_or_a_surrogate_reads_back(api) -> None:
    """Input can no longer carry them, but a worker's own result could: GET answers 200, never 500."""
    from taskfleet_api.producer import celery_app, record_job

    job_id = f"odd-result-{uuid.uuid4().hex[:8]}"
    record_job(job_id, "maintenance.canary", "default", 0.0)
    celery_app().backend.store_result(
        job_id, {"score": float("nan"), "top": float("inf"), "name": "bad \ud800", "ok": [1, 2.5]}, "SUCCESS"
    )
    response = api.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"score": "NaN", "top": "Infinity", "name": "bad \\ud800", "ok": [1, 2.5]}


def test_schema_valid_addresses_are_accepted(api) -> None:
    """ST202 from the issue: ``x@i5.a.test`` is a valid address (a reserved test domain, not undeliverable syntax)."""
    body = {"to": ["x@i5.a.test"], "subject": "s", "text": "t", "reply_to": "jörg@bücher.example"}
    response = api.post("/api/v1/jobs", json={"task": "email.send_email", "kwargs": body, "countdown": 600})
    assert response.status_code == 202, response.text
    api.post(f"/api/v1/jobs/{response.json()['id']}/revoke")  # not meant to be sent
