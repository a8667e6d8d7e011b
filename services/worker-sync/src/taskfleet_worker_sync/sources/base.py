"""What an adapter is, and the HTTP behaviour all five share: timeouts, retries with backoff on 5xx/timeouts.

A 5xx, a timeout or a dropped connection is retried ``GRANT_HTTP_RETRIES`` times, the delay
doubling from ``GRANT_HTTP_BACKOFF_SECONDS`` (with jitter); then the source is reported
unavailable (``SourceUnavailable``, transient). A 4xx is the request's fault and is not
retried (``SourceRejected``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx

from taskfleet_worker_sync.normalise import NormalisedGrant
from taskfleet_worker_sync.settings import GrantSourceSettings

log = logging.getLogger("taskfleet.sync.sources")

RETRY_STATUSES = frozenset({500, 502, 503, 504, 429})


class SourceError(Exception):
    """A source could not be read."""


class SourceUnavailable(SourceError):
    """5xx or timeouts beyond the retry budget: may pass, worth retrying later."""


class SourceRejected(SourceError):
    """A 4xx or a configuration problem (missing key): retrying will not help."""


def make_client(settings: GrantSourceSettings) -> httpx.AsyncClient:
    timeout = httpx.Timeout(settings.grant_http_timeout_seconds, connect=min(10.0, settings.grant_http_timeout_seconds))
    return httpx.AsyncClient(
        timeout=timeout, follow_redirects=True, headers={"User-Agent": "taskfleet-grant-sync/0.1 (+taskfleet)"}
    )


class SourceAdapter:
    """Base of the five adapters: ``pages()`` yields raw records page by page, ``normalise()`` maps one record."""

    name: str = ""

    def __init__(self, client: httpx.AsyncClient, settings: GrantSourceSettings) -> None:
        self.client = client
        self.settings = settings
        self.pages_fetched = 0

    def pages(self, *, full: bool, watermark: str | None, max_pages: int | None) -> AsyncIterator[list[dict[str, Any]]]:
        raise NotImplementedError

    def normalise(self, record: dict[str, Any]) -> NormalisedGrant | None:
        raise NotImplementedError

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP call with the retry policy of the module docstring."""
        attempts = self.settings.grant_http_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                response = await self.client.request(method, url, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise SourceRejected(f"{self.name}: HTTP {response.status_code} from {url}: {response.text[:200]}")
                problem = f"HTTP {response.status_code}"
            if attempt == attempts:
                raise SourceUnavailable(f"{self.name}: {problem} from {url} after {attempts} attempts")
            await self.backoff(attempt, problem)
        raise AssertionError("unreachable")

    async def backoff(self, attempt: int, problem: str) -> None:
        """Sleep before retry ``attempt``: the base delay doubled per attempt, with jitter."""
        wait = self.settings.grant_http_backoff_seconds * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
        log.warning("%s: %s (attempt %d), retrying in %.2fs", self.name, problem, attempt, wait)
        await asyncio.sleep(wait)

    async def get_json(self, url: str, **kwargs: Any) -> Any:
        response = await self.request("GET", url, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise SourceUnavailable(f"{self.name}: invalid JSON from {url}: {exc}") from exc

    def page_limit_reached(self, max_pages: int | None) -> bool:
        return max_pages is not None and self.pages_fetched >= max_pages
