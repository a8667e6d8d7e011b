"""Console sessions: a token typed once into the login form, then a server-side session in Valkey.

The cookie holds only a random session id (``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind https); Valkey
holds, under the id's SHA-256, the token's SHA-256 digest (the form the API's ``TokenAuth`` already keeps) and
the session's CSRF token. Every request re-checks that digest against the configured token lists, so a token
rotated out of ``API_TOKENS``/``API_READ_TOKENS`` ends its console sessions at once, and a read token stays a
read token. Neither the raw token nor anything that can be replayed against the JSON API is ever stored.

Every POST carries the session's CSRF token in a hidden field (checked in constant time); the login form, made
before there is a session, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request, Response, status
from taskfleet_core.broker.client import client
from taskfleet_core.broker.keys import KEY_PREFIX

from taskfleet_api.auth import Scope, TokenAuth

#: STRING per console session: JSON {"digest", "csrf"}. TTL: SESSION_SECONDS, renewed on use.
SESSION_KEY = KEY_PREFIX + "console:session:{sid_hash}"
SESSION_COOKIE = "taskfleet_console"
LOGIN_CSRF_COOKIE = "taskfleet_console_login"
#: An idle session ends after this (sliding); the cookie is a session cookie (gone with the browser).
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Session:
    scope: Scope
    csrf: str
    #: A short fingerprint of the token (first 12 hex digits of its SHA-256) for the audit log: says which
    #: token acted without writing the token.
    fingerprint: str

    @property
    def admin(self) -> bool:
        return self.scope is Scope.ADMIN


def _key(sid: str) -> str:
    return SESSION_KEY.format(sid_hash=hashlib.sha256(sid.encode()).hexdigest())


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def scope_of_digest(auth: TokenAuth, digest: bytes) -> Scope | None:
    """The scope a token digest has now (both lists always compared, in constant time)."""
    is_admin = any([hmac.compare_digest(digest, d) for d in auth.admin])
    is_reader = any([hmac.compare_digest(digest, d) for d in auth.read])
    return Scope.ADMIN if is_admin else Scope.READ if is_reader else None


def login(request: Request, response: Response, token: str) -> bool:
    """Open a session for a valid token and set its cookie; False for an invalid one."""
    digest = hashlib.sha256(token.strip().encode()).digest()
    if scope_of_digest(request.app.state.auth, digest) is None:
        return False
    sid = secrets.token_urlsafe(32)
    data = {"digest": digest.hex(), "csrf": secrets.token_urlsafe(32)}
    client().set(_key(sid), json.dumps(data), ex=SESSION_SECONDS)
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", secure=_secure(request), path="/console")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return True


def logout(request: Request, response: Response) -> None:
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        client().delete(_key(sid))
    response.delete_cookie(SESSION_COOKIE, path="/console")


def current(request: Request) -> Session | None:
    """The request's session, if its cookie names a live one whose token is still configured."""
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid or len(sid) > 100:
        return None
    key = _key(sid)
    raw = client().get(key)
    if raw is None:
        return None
    data = json.loads(raw)
    digest = bytes.fromhex(data["digest"])
    scope = scope_of_digest(request.app.state.auth, digest)
    if scope is None:  # the token was rotated out: the session ends with it
        client().delete(key)
        return None
    client().expire(key, SESSION_SECONDS)
    return Session(scope=scope, csrf=data["csrf"], fingerprint=digest.hex()[:12])


def login_csrf(request: Request, response: Response) -> str:
    """The login form's CSRF value: reuse the browser's double-submit cookie or set a new one."""
    value = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, value, httponly=True, samesite="strict", secure=_secure(request), path="/console"
    )
    return value


def check_login_csrf(request: Request, submitted: str) -> None:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF check failed: reload the login page")


def check_csrf(session: Session, submitted: str | None) -> None:
    """Every console POST: the hidden field must equal the session's CSRF token."""
    if not submitted or not hmac.compare_digest(session.csrf.encode(), submitted.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF check failed")
