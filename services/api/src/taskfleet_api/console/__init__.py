"""The operator console: the fleet at a glance in a browser, served by the API process itself (docs/console.md)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskfleet_api.console.routes import router

#: No inline script or style anywhere: scripts and styles come only from /console/static.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class ConsoleHeaders:
    """Adds the CSP and friends to every response under /console (pages, fragments, assets, errors)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/console"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(HEADERS)
                if not scope["path"].startswith("/console/static/"):
                    extra.append((b"cache-control", b"no-store"))  # pages show live state and secrets
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, with_headers)


def mount(api: FastAPI) -> None:
    api.include_router(router)
    api.mount("/console/static", StaticFiles(directory=Path(__file__).parent / "static"), name="console-static")
    api.add_middleware(ConsoleHeaders)
