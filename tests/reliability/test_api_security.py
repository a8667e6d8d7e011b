"""API security: bearer tokens (rotation, constant-time compare), secure defaults, CORS off, JSON-only broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from taskfleet_api.auth import parse_tokens, token_matches

UNKNOWN_TASK = {"task": "no.such_task"}  # passes auth, then 404: nothing reaches the broker


@pytest.fixture
def make_api(monkeypatch: pytest.MonkeyPatch, fleet_env: dict[str, str]) -> Iterator[Callable[..., TestClient]]:
    """An API built with extra environment (tokens, CORS); settings cache reset around it."""
    from taskfleet_core import settings

    def make(**env: str) -> TestClient:
        for key in ("API_TOKENS", "API_READ_TOKENS", "API_CORS_ORIGINS"):
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


#: Every operation behind a token, with a request that passes validation (so only auth decides).
READS = [
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/some-id"),
    ("get", "/api/v1/grants"),
    ("get", "/api/v1/grants/1"),
    ("get", "/api/v1/tasks"),
    ("get", "/api/v1/queues"),
    ("get", "/api/v1/companies/1"),
    ("get", "/api/v1/companies/1/matches"),
]
ADMIN = [
    ("post", "/api/v1/jobs"),
    ("post", "/api/v1/jobs/some-id/revoke"),
    ("get", "/api/v1/dlq"),
    ("get", "/api/v1/dlq/stats"),
    ("get", "/api/v1/dlq/some-id"),
    ("post", "/api/v1/dlq/some-id/replay"),
    ("post", "/api/v1/dlq/replay"),
    ("delete", "/api/v1/dlq/some-id"),
    ("delete", "/api/v1/dlq"),
    ("post", "/api/v1/companies"),
    ("post", "/api/v1/users"),
]


def _call(api: TestClient, method: str, path: str, headers: dict[str, str] | None = None):
    kwargs = {"json": UNKNOWN_TASK} if (method, path) == ("post", "/api/v1/jobs") else {}
    return getattr(api, method)(path, headers=headers or {}, **kwargs)


def test_every_operation_is_closed_by_default(make_api) -> None:
    api = make_api(API_TOKENS="old-token, new-token", API_READ_TOKENS="reader")
    for method, path in READS + ADMIN:
        missing = _call(api, method, path)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer", (method, path)
        wrong = _call(api, method, path, bearer("new-token-but-longer"))
        assert wrong.status_code == 401 and "invalid" in wrong.json()["detail"], (method, path)
        basic = _call(api, method, path, {"Authorization": "Basic b2xkLXRva2Vu"})
        assert basic.status_code == 401, (method, path)
    # probes and metrics stay open; a wrong token there changes nothing
    for path in ("/healthz", "/readyz", "/metrics"):
        assert api.get(path, headers=bearer("wrong")).status_code == 200, path


def test_read_token_reads_but_never_mutates_nor_sees_dead_letters(make_api) -> None:
    api = make_api(API_TOKENS="admin", API_READ_TOKENS="reader")
    assert api.get("/api/v1/tasks", headers=bearer("reader")).status_code == 200
    assert api.get("/api/v1/queues", headers=bearer("reader")).status_code == 200
    assert api.get("/api/v1/jobs/some-id", headers=bearer("reader")).status_code == 404
    for method, path in ADMIN:
        response = _call(api, method, path, bearer("reader"))
        assert response.status_code == 403, (method, path, response.text)
        assert "admin token" in response.json()["detail"]
    # both admin tokens work during a rotation
    assert api.get("/api/v1/dlq/stats", headers=bearer("admin")).status_code == 200
    assert api.post("/api/v1/jobs", json=UNKNOWN_TASK, headers=bearer("admin")).status_code == 404


def test_no_token_configured_refuses_everything(make_api) -> None:
    api = make_api()
    assert api.get("/api/v1/tasks", headers=bearer("anything")).status_code == 401
    assert api.post("/api/v1/jobs", json=UNKNOWN_TASK, headers=bearer("anything")).status_code == 401
    assert api.get("/healthz").status_code == 200


def test_spec_declares_exactly_what_is_enforced(make_api) -> None:
    """Security on exactly the guarded operations; 401 on all of them, 403 on exactly the admin ones."""
    api = make_api(API_TOKENS="admin")
    spec = api.get("/openapi.json").json()
    operations = {(m, p): op for p, ops in spec["paths"].items() for m, op in ops.items()}
    guarded = {
        (
            m,
            p.replace("{job_id}", "some-id")
            .replace("{entry_id}", "some-id")
            .replace("{company_id}", "1")
            .replace("{grant_id}", "1"),
        )
        for m, p in operations
        if p.startswith("/api/")
    }
    assert guarded == set(READS) | set(ADMIN)
    for (method, path), op in operations.items():
        concrete = (
            path.replace("{job_id}", "some-id")
            .replace("{entry_id}", "some-id")
            .replace("{company_id}", "1")
            .replace("{grant_id}", "1")
        )
        if path.startswith("/api/"):
            assert op["security"] == [{"bearerToken": []}], path
            assert "401" in op["responses"], path
            assert ("403" in op["responses"]) == ((method, concrete) in ADMIN), (method, path)
        else:
            assert "security" not in op and "401" not in op["responses"], path
    assert spec["components"]["securitySchemes"]["bearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerToken"]["description"],
    }


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
    assert bad.json()["detail"][0]["loc"] == ["body", 1]


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
