"""Error responses, declared per router and route so the OpenAPI spec tells clients the truth.

Schemathesis checks every status code the API returns against the spec: an undocumented status
is a contract violation even when the behaviour is right, and a declared one that cannot happen
misleads. 401 is declared on every operation that needs a token, 403 on the admin ones, 415 on
those with a JSON body (``bodies.GuardedRoute``), 413 wherever a body can be sent.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from pydantic import BaseModel

from taskfleet_api.auth import require_admin


class Problem(BaseModel):
    detail: Any


#: Every operation behind a token (all but the probes, /metrics and the docs).
PROTECTED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Bearer token missing or not valid"},
    413: {"model": Problem, "description": "Request body larger than API_MAX_BODY_BYTES"},
}
#: Operations that need an admin token: a read token gets 403.
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "A read token; this operation needs an admin token (API_TOKENS)"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such job, task contract, company, grant or dead letter"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Not possible in the current state (finished job, unreplayable entry)"}
}

#: Keyword arguments of an admin-only route in a router readable with a read token.
ADMIN_ONLY: dict[str, Any] = {"dependencies": [Depends(require_admin)], "responses": FORBIDDEN}
