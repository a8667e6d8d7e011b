"""Bearer-token authentication for the job API: closed by default, two scopes.

* ``API_TOKENS``: admin tokens. They read everything and may mutate: submit and revoke jobs,
  create companies and users, and everything under ``/api/v1/dlq`` (dead letters carry
  payloads, recipients and tracebacks, so even reading them is an admin matter).
* ``API_READ_TOKENS``: read tokens. They read jobs, queues, tasks, grants, companies and matches.

Both lists are comma-separated (mounted from a Kubernetes Secret) and may hold several tokens at
once, so a token is rotated without downtime: add the new one, roll the clients, remove the old
one. Every candidate is compared in constant time (``hmac.compare_digest``) and all of them are
checked, so timing tells nothing about which token or how much of it matched.

Every endpoint except the probes (``/healthz``, ``/readyz``) and ``/metrics`` needs a token; with no
token configured, every such request is refused (401). A missing or wrong token is 401 everywhere;
a valid read token on an admin operation is 403. The OpenAPI spec declares the bearer scheme on
exactly these operations, with 401 on all of them and 403 on the admin ones.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from enum import StrEnum

from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from taskfleet_api.settings import ApiSettings

log = logging.getLogger("taskfleet.api.auth")

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="A read token (API_READ_TOKENS) or an admin token (API_TOKENS); operations that answer 403 "
    "to a read token need an admin token.",
)


class Scope(StrEnum):
    READ = "read"
    ADMIN = "admin"


def parse_tokens(raw: str) -> list[bytes]:
    """Tokens as digests: equal length for every compare, and the secrets are not kept as typed."""
    return [hashlib.sha256(t.strip().encode()).digest() for t in raw.split(",") if t.strip()]


def token_matches(candidate: str, digests: list[bytes]) -> bool:
    probe = hashlib.sha256(candidate.encode()).digest()
    matched = False
    for digest in digests:  # no early exit: the time does not depend on which token matched
        matched |= hmac.compare_digest(probe, digest)
    return matched


def _unauthorized(message: str, error: str | None = None) -> HTTPException:
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": challenge})


class TokenAuth:
    """Resolves a request's bearer token to its scope, or refuses it."""

    def __init__(self, settings: ApiSettings) -> None:
        self.admin = parse_tokens(settings.api_tokens)
        self.read = parse_tokens(settings.api_read_tokens)
        if not self.admin and not self.read:
            log.warning("neither API_TOKENS nor API_READ_TOKENS is set: every API request is refused (401)")

    def scope(self, credentials: HTTPAuthorizationCredentials | None) -> Scope:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorized("bearer token required")
        token = credentials.credentials
        is_admin = token_matches(token, self.admin)
        is_reader = token_matches(token, self.read)  # both lists always checked: same time either way
        if is_admin:
            return Scope.ADMIN
        if is_reader:
            return Scope.READ
        raise _unauthorized("invalid bearer token", "invalid_token")

    def check_header(self, authorization: str | None) -> Scope:
        """The scope of a raw ``Authorization`` header (for checks made before FastAPI's dependencies run)."""
        scheme, token = get_authorization_scheme_param(authorization)
        if not authorization or not scheme or not token:
            return self.scope(None)
        return self.scope(HTTPAuthorizationCredentials(scheme=scheme, credentials=token))


# The dependencies below are ``async def`` although they only compute: a plain ``def`` dependency runs in
# FastAPI's thread pool, a thread hop per dependency per request (docs/performance.md).


def _read_scope(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Scope:
    scope: Scope = request.app.state.auth.scope(credentials)
    request.state.token_scope = scope
    return scope


def _admin_only(request: Request) -> None:
    if getattr(request.state, "token_scope", None) is not Scope.ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this operation needs an admin token (API_TOKENS)")


async def require_read(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> Scope:
    """Router dependency: any valid token (read or admin); 401 otherwise. Keeps the scope for ``require_admin``."""
    return _read_scope(request, credentials)


async def require_admin(request: Request) -> None:
    """Route dependency after ``require_read``: a read token gets 403. Declares no security scheme itself, so the
    spec names the bearer scheme once per operation."""
    _admin_only(request)


async def require_admin_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(_bearer)
) -> None:
    """Router dependency of admin-only routers (the DLQ): 401 without a valid token, 403 for a read token."""
    _read_scope(request, credentials)
    _admin_only(request)
