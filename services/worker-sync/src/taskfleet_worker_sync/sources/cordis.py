"""CORDIS bulk open data: the HORIZON and H2020 project zips, both JSON layouts.

Until mid-2026 a zip held one ``project.json`` array; since then one ``project-rcn-<rcn>_en.json``
file per project (without ``frameworkProgramme``). Both are read; ``organization.json`` gives
each project's participant countries. The zip is streamed to a temporary file (the real ones
are large). Incremental syncs skip projects whose ``contentUpdateDate`` is not past the watermark.
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import IO, Any

import httpx

from taskfleet_worker_sync.normalise import NormalisedGrant, countries, parse_amount, parse_datetime, text
from taskfleet_worker_sync.normalise import unique as uniq
from taskfleet_worker_sync.sources.base import RETRY_STATUSES, SourceAdapter, SourceRejected, SourceUnavailable

PROGRAMMES = ("HORIZON", "h2020")
STATUS = {"signed": "active", "closed": "closed", "terminated": "cancelled"}
_PER_PROJECT = re.compile(r"(^|/)project-rcn-[^/]+\.json$")


class CordisAdapter(SourceAdapter):
    name = "cordis"

    async def pages(
        self, *, full: bool, watermark: str | None, max_pages: int | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        for programme in PROGRAMMES:
            if self.page_limit_reached(max_pages):
                return
            url = f"{self.settings.cordis_data_url.rstrip('/')}/cordis-{programme}projects-json.zip"
            with tempfile.TemporaryFile() as spool:
                await self._download(url, spool)
                records = read_zip(spool)
            self.pages_fetched += 1
            if not full and watermark:
                records = [r for r in records if text(r.get("contentUpdateDate")) > watermark]
            yield records

    async def _download(self, url: str, spool: IO[bytes]) -> None:
        """GET the zip into ``spool`` with the shared retry policy (the body is streamed, not held in memory)."""
        for attempt in range(self.settings.grant_http_retries + 1):
            spool.seek(0)
            spool.truncate()
            try:
                async with self.client.stream("GET", url) as response:
                    if response.status_code in RETRY_STATUSES:
                        raise SourceUnavailable(f"cordis: HTTP {response.status_code} from {url}")
                    if response.status_code >= 400:
                        raise SourceRejected(f"cordis: HTTP {response.status_code} from {url}")
                    async for chunk in response.aiter_bytes(1 << 16):
                        spool.write(chunk)
                return
            except (SourceUnavailable, httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt == self.settings.grant_http_retries:
                    raise SourceUnavailable(f"cordis: {exc} ({url}) after {attempt + 1} attempts") from exc
                await self.backoff(attempt + 1, str(exc))

    def normalise(self, r: dict[str, Any]) -> NormalisedGrant | None:
        pid = text(r.get("id"))
        if not pid:
            return None
        amount = parse_amount(r.get("ecMaxContribution")) or parse_amount(r.get("totalCost"))
        programme = text(r.get("frameworkProgramme")) or text(r.get("legalBasis")).split(".")[0] or None
        return NormalisedGrant(
            source=self.name,
            external_id=pid,
            title=text(r.get("title")) or text(r.get("acronym")) or pid,
            description=text(r.get("objective")),
            funder="European Commission",
            countries=countries(r.get("_countries") or []),
            sectors=uniq(k for k in text(r.get("keywords")).split(",")),
            themes=uniq([programme, r.get("fundingScheme"), r.get("topics")]),
            amount=amount,
            currency="EUR" if amount is not None else None,
            open_date=parse_datetime(r.get("startDate")),
            end_date=parse_datetime(r.get("endDate")),
            status=STATUS.get(text(r.get("status")).lower(), "active"),
            url=f"https://cordis.europa.eu/project/id/{pid}",
            modified=text(r.get("contentUpdateDate")) or None,
            raw=r,
        )


def read_zip(spool: IO[bytes]) -> list[dict[str, Any]]:
    """Projects of either layout, each with ``_countries`` from ``organization.json`` attached."""
    spool.seek(0)
    try:
        archive = zipfile.ZipFile(spool)
    except zipfile.BadZipFile as exc:
        raise SourceUnavailable(f"cordis: not a zip file: {exc}") from exc
    projects: list[dict[str, Any]] = []
    organisations: list[dict[str, Any]] = []
    with archive:
        for name in archive.namelist():
            base = name.rsplit("/", 1)[-1]
            if _PER_PROJECT.search(name):
                loaded = json.loads(archive.read(name))
                projects.extend(loaded if isinstance(loaded, list) else [loaded])
            elif base == "project.json":
                projects.extend(json.loads(archive.read(name)))
            elif base == "organization.json":
                organisations = json.loads(archive.read(name))
    by_project: dict[str, list[str]] = defaultdict(list)
    for org in organisations:
        if isinstance(org, dict) and org.get("country"):
            by_project[str(org.get("projectID"))].append(str(org["country"]))
    return [p | {"_countries": by_project.get(str(p.get("id")), [])} for p in projects if isinstance(p, dict)]
