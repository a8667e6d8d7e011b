"""API security: bearer tokens (rotation, constant-time compare), secure defaults, CORS off, JSON-only broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from taskfleet_api.auth import parse_tokens, token_matches

UNKNOWN_TASK = {"task": "no.such_task"}  # passes auth, then 404: nothing reaches the broker


@pytest.fixture
def make_api(monkeypatch: pytest.MonkeyPatch, fleet_env: dict[str, str]) -> Iterator[Callable[..., TestClient]]:
    """An API built with extra environment (tokens, read-only auth, CORS); settings cache reset around it."""
    from taskfleet_core import settings

    def make(**env: str) -> TestClient:
        for key in ("API_TOKENS", "API_AUTH_REQUIRED", "API_AUTH_READ_ONLY", "API_CORS_ORIGINS"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings.reload()
        from taskfleet_api.main import create_api

        return TestClient(create_api())

    yield make
    settings.reload()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_mutating_endpoints_need_one_of_the_configured_tokens(make_api) -> None:
    api = make_api(API_TOKENS="old-token, new-token")
    for method, path in [
        ("post", "/api/v1/jobs"),
        ("delete", "/api/v1/jobs/some-id"),
        ("post", "/api/v1/dlq/some-id/replay"),
        ("post", "/api/v1/dlq/replay"),
        ("delete", "/api/v1/dlq"),
    ]:
        kwargs = {"json": UNKNOWN_TASK} if path == "/api/v1/jobs" else {}
        assert getattr(api, method)(path, **kwargs).status_code == 401, path
        wrong = getattr(api, method)(path, headers=bearer("new-token-but-longer"), **kwargs)
        assert wrong.status_code == 401 and "invalid" in wrong.json()["detail"]
    # both tokens work during a rotation; Basic auth is not a bearer token
    assert api.post("/api/v1/jobs", json=UNKNOWN_TASK, headers=bearer("old-token")).status_code == 404
    assert api.post("/api/v1/jobs", json=UNKNOWN_TASK, headers=bearer("new-token")).status_code == 404
    basic = {"Authorization": "Basic b2xkLXRva2Vu"}
    assert api.post("/api/v1/jobs", json=UNKNOWN_TASK, headers=basic).status_code == 401


def test_no_token_configured_refuses_instead_of_opening_up(make_api) -> None:
    api = make_api()
    assert api.post("/api/v1/jobs", json=UNKNOWN_TASK, headers=bearer("anything")).status_code == 401
    assert api.get("/api/v1/tasks").status_code == 200
    opened = make_api(API_AUTH_REQUIRED="false")  # an explicit choice, for a laptop
    assert opened.post("/api/v1/jobs", json=UNKNOWN_TASK).status_code == 404


def test_read_only_endpoints_are_open_unless_configured(make_api) -> None:
    api = make_api(API_TOKENS="reader")
    assert api.get("/api/v1/tasks").status_code == 200
    assert api.get("/api/v1/dlq").status_code == 200
    locked = make_api(API_TOKENS="reader", API_AUTH_READ_ONLY="true")
    for path in ("/api/v1/tasks", "/api/v1/queues", "/api/v1/dlq", "/api/v1/dlq/stats", "/api/v1/jobs/x"):
        assert locked.get(path).status_code == 401, path
    assert locked.get("/api/v1/tasks", headers=bearer("reader")).status_code == 200
    assert locked.get("/healthz").status_code == 200  # probes never need a token


def test_cors_is_off_by_default_and_only_for_listed_origins(make_api) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    api = make_api(API_TOKENS="t")
    response = api.options("/api/v1/jobs", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    allowed = make_api(API_TOKENS="t", API_CORS_ORIGINS="https://app.example")
    ok = allowed.options("/api/v1/jobs", headers={**preflight, "Origin": "https://app.example"})
    assert ok.headers.get("access-control-allow-origin") == "https://app.example"
    evil = allowed.options("/api/v1/jobs", headers=preflight)
    assert "access-control-allow-origin" not in evil.headers


def test_errors_carry_no_stack_trace_and_large_bodies_are_refused(make_api) -> None:
    api = make_api(API_TOKENS="t", API_MAX_BODY_BYTES="2048")
    big = {"task": "maintenance.canary", "kwargs": {"payload": {"x": "y" * 5000}}}
    assert api.post("/api/v1/jobs", json=big, headers=bearer("t")).status_code == 413
    bad = api.post("/api/v1/jobs", content=b"{not json", headers={**bearer("t"), "Content-Type": "application/json"})
    assert bad.status_code == 422 and "Traceback" not in bad.text


def test_token_compare_checks_every_token() -> None:
    digests = parse_tokens(" a , b,,c ")
    assert len(digests) == 3
    assert token_matches("b", digests) and token_matches("c", digests)
    assert not token_matches("d", digests) and not token_matches("", digests)


def test_broker_accepts_json_only(fleet_env: dict[str, str]) -> None:
    from taskfleet_api.producer import celery_app

    app = celery_app()
    assert app.conf.accept_content == ["json"] and app.conf.task_serializer == "json"
    assert app.conf.result_accept_content == ["json"]
