"""Bearer-token authentication for the job API.

Tokens come from ``API_TOKENS`` (comma-separated, mounted from a Kubernetes Secret); several
may be valid at once so a token can be rotated without downtime: add the new one, roll the
clients, remove the old one. Every candidate is compared in constant time
(``hmac.compare_digest``) and all of them are checked, so timing tells nothing about which
token or how much of it matched.

Secure by default: mutating endpoints (submit, revoke, DLQ replay and purge) always need a
token. With no token configured they answer 401 rather than open up -- unless
``API_AUTH_REQUIRED=false`` is set explicitly (a laptop). Read-only endpoints are open unless
``API_AUTH_READ_ONLY=true``. Health probes never need a token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from taskfleet_api.settings import ApiSettings

log = logging.getLogger("taskfleet.api.auth")

_bearer = HTTPBearer(auto_error=False, description="API token (one of API_TOKENS)")


def parse_tokens(raw: str) -> list[bytes]:
    """Tokens as digests: equal length for every compare, and the secrets are not kept as typed."""
    return [hashlib.sha256(t.strip().encode()).digest() for t in raw.split(",") if t.strip()]


def token_matches(candidate: str, digests: list[bytes]) -> bool:
    probe = hashlib.sha256(candidate.encode()).digest()
    matched = False
    for digest in digests:  # no early exit: the time does not depend on which token matched
        matched |= hmac.compare_digest(probe, digest)
    return matched


class TokenAuth:
    """Two dependencies: ``write`` for mutating endpoints, ``read`` for read-only ones."""

    def __init__(self, settings: ApiSettings) -> None:
        self.digests = parse_tokens(settings.api_tokens)
        self.required = settings.api_auth_required
        self.read_only = settings.api_auth_read_only
        if not self.digests:
            if self.required:
                log.warning("API_TOKENS is empty: mutating endpoints refuse every request (401)")
            else:
                log.warning("API_AUTH_REQUIRED=false and no API_TOKENS: the API is open to anyone who reaches it")

    def check(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        if not self.digests and not self.required:
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "bearer token required", headers={"WWW-Authenticate": "Bearer"}
            )
        if not token_matches(credentials.credentials, self.digests):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid bearer token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )


def require_write(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
    """Dependency of mutating routes (submit, revoke, DLQ replay/purge)."""
    request.app.state.auth.check(credentials)


def require_read(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
    """Dependency of read-only routes: a token only when ``API_AUTH_READ_ONLY`` is on."""
    auth: TokenAuth = request.app.state.auth
    if auth.read_only:
        auth.check(credentials)
