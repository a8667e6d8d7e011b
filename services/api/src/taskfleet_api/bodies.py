"""Strict JSON request bodies: decided before any handler or model sees them.

Every route with a request body uses ``GuardedRoute``, which, before FastAPI parses the body:

* answers 415 when the body is not declared as JSON (``application/json`` or ``*+json``);
* answers 422 when the body is not valid UTF-8, not valid JSON, nested deeper than ``MAX_DEPTH``,
  or holds a value no JSON peer can read back: ``NaN``, ``Infinity``, a number that overflows a
  double (``1e400``), or a lone UTF-16 surrogate (``"\\ud800"``) in a string or a key.

Each error names where it is (``loc``: ``["body", "kwargs", "payload", "k"]``) and echoes no input
(a lone surrogate cannot even be encoded in the answer). Every such route declares 415 in the spec.
"""

from __future__ import annotations

import email.message
import json
import math
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi import Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

#: Deepest nesting of arrays and objects accepted (a task argument never needs more).
MAX_DEPTH = 32

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"title": "Detail"}},
    "required": ["detail"],
    "title": "Problem",
}


class _NonFinite:
    """Stands in for NaN/Infinity while parsing, so the walk can say where it was."""


_NON_FINITE = _NonFinite()


def _parse_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NON_FINITE


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def problems(value: Any, loc: tuple[str | int, ...] = ("body",), depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every value in parsed JSON that cannot be stored and read back, with where it is."""
    if depth > MAX_DEPTH:
        yield {"type": "json_too_deep", "loc": list(loc), "msg": f"nested deeper than {MAX_DEPTH} levels"}
        return
    if value is _NON_FINITE:
        yield {"type": "finite_number", "loc": list(loc), "msg": "number must be finite (no NaN, Infinity, 1e400)"}
    elif isinstance(value, str):
        if _has_surrogate(value):
            yield {"type": "string_unicode", "loc": list(loc), "msg": "string holds a lone UTF-16 surrogate"}
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from problems(item, (*loc, index), depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if _has_surrogate(key):
                yield {"type": "string_unicode", "loc": list(loc), "msg": "a key holds a lone UTF-16 surrogate"}
                continue
            yield from problems(item, (*loc, key), depth + 1)


def check_body(body: bytes) -> list[dict[str, Any]]:
    """The errors of a JSON body (empty: it is strict JSON that can be stored and read back)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [{"type": "utf8_invalid", "loc": ["body"], "msg": f"body is not valid UTF-8 (byte {exc.start})"}]
    try:
        value = json.loads(text, parse_constant=lambda _: _NON_FINITE, parse_float=_parse_float)
    except json.JSONDecodeError as exc:
        return [{"type": "json_invalid", "loc": ["body", exc.pos], "msg": f"JSON decode error: {exc.msg}"}]
    except RecursionError:
        return [{"type": "json_too_deep", "loc": ["body"], "msg": f"nested deeper than {MAX_DEPTH} levels"}]
    return list(problems(value))


class GuardedRoute(APIRoute):
    """An APIRoute whose JSON body is checked by ``check_body`` first; routes without a body are unchanged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.body_field is not None:
            self.responses = {
                **self.responses,
                415: {
                    "description": "Request body is not JSON (Content-Type must be application/json)",
                    "content": {"application/json": {"schema": PROBLEM_SCHEMA}},
                },
            }

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def guarded(request: Request) -> Response:
            request.app.state.auth.check_header(request.headers.get("authorization"))  # 401 before 415/422
            try:
                body = await request.body()  # cached on the request: the handler reads the same bytes
            except ClientDisconnect:  # BodySizeLimit has answered 413 already; this reply is dropped
                return Response(status_code=status.HTTP_413_CONTENT_TOO_LARGE)
            if body or request.headers.get("content-type"):
                if not _is_json(request.headers.get("content-type")):
                    return JSONResponse(
                        {"detail": "request body must be JSON (Content-Type: application/json)"},
                        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                    )
                errors = check_body(body)
                if errors:
                    return JSONResponse({"detail": errors}, status.HTTP_422_UNPROCESSABLE_CONTENT)
            return await handler(request)

        return guarded
