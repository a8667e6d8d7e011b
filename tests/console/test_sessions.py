"""Console sessions without a browser: what the cookie holds, what Valkey holds, and that rotating a token out of
the API's lists ends its sessions (the API app against the session's valkey-server)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from taskfleet_api.console import session


@pytest.fixture
def make_api(monkeypatch: pytest.MonkeyPatch, fleet_env: dict[str, str]) -> Iterator[Callable[..., TestClient]]:
    """The API app with the given tokens (settings reloaded), over https so the cookie is ``Secure``."""
    from taskfleet_core import settings

    def make(**env: str) -> TestClient:
        for key in ("API_TOKENS", "API_READ_TOKENS"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings.reload()
        from taskfleet_api.main import create_api

        return TestClient(create_api(), base_url="https://console.test", follow_redirects=False)

    yield make
    settings.reload()


def sign_in(api: TestClient, token: str) -> str:
    form = api.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert form.status_code == 200 and csrf
    done = api.post("/console/login", data={"token": token, "csrf": csrf.group(1)})
    assert done.status_code == 303 and done.headers["location"] == "/console/"
    cookie = next(v for v in done.headers.get_list("set-cookie") if v.startswith(session.SESSION_COOKIE + "="))
    assert {"HttpOnly", "Secure", "SameSite=strict", "Path=/console"} <= {p.strip() for p in cookie.split(";")}
    return api.cookies[session.SESSION_COOKIE]


def test_the_token_stays_on_the_server_as_a_digest(make_api, redis_client) -> None:
    api = make_api(API_TOKENS="admin-secret-token")
    sid = sign_in(api, "admin-secret-token")
    key = session.SESSION_KEY.format(sid_hash=hashlib.sha256(sid.encode()).hexdigest())
    stored = redis_client.get(key)
    assert stored and "admin-secret-token" not in stored and "admin-secret-token" not in sid
    assert hashlib.sha256(b"admin-secret-token").hexdigest() in stored
    assert session.SESSION_SECONDS - 60 < redis_client.ttl(key) <= session.SESSION_SECONDS  # 8 h, sliding
    page = api.get("/console/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_rotating_a_token_out_ends_its_sessions(make_api) -> None:
    old = make_api(API_TOKENS="old-token,new-token")
    sid = sign_in(old, "old-token")
    assert old.get("/console/").status_code == 200
    rotated = make_api(API_TOKENS="new-token")  # the same Valkey, the old token removed
    rotated.cookies.set(session.SESSION_COOKIE, sid, domain="console.test")
    gone = rotated.get("/console/")
    assert gone.status_code == 303 and gone.headers["location"] == "/console/login"


def test_console_routes_are_not_in_the_spec(make_api) -> None:
    spec = make_api(API_TOKENS="t").get("/openapi.json").json()
    assert not [path for path in spec["paths"] if path.startswith("/console")]
