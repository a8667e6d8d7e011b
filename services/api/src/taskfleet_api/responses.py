"""Error responses every router may give, declared so the OpenAPI spec tells clients the truth.

Schemathesis checks every status code the API returns against the spec; an undocumented
401/404/409/413 is a contract violation even when the behaviour is right.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Problem(BaseModel):
    detail: Any


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Bearer token missing or not valid"},
    404: {"model": Problem, "description": "No such job, task contract or dead letter"},
    409: {"model": Problem, "description": "Not possible in the current state (finished job, unreplayable entry)"},
    413: {"model": Problem, "description": "Request body larger than API_MAX_BODY_BYTES"},
}
