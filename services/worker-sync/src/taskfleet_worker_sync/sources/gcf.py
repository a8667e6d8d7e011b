"""Green Climate Fund open data API: every approved project in one JSON array, no paging, no filters.

Status fields are missing from older snapshots (schema drift), so the status falls back to
the dates: cancelled, completed, ended, or under implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from taskfleet_worker_sync.normalise import NormalisedGrant, as_list, countries, parse_amount, parse_datetime, text
from taskfleet_worker_sync.normalise import unique as uniq
from taskfleet_worker_sync.sources.base import SourceAdapter, SourceUnavailable

STATUS = {
    "under implementation": "active",
    "approved": "active",
    "fully disbursed": "active",
    "completed": "completed",
    "closed": "closed",
    "cancelled": "cancelled",
    "withdrawn": "cancelled",
}


class GcfAdapter(SourceAdapter):
    name = "gcf"

    async def pages(
        self, *, full: bool, watermark: str | None, max_pages: int | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        data = await self.get_json(self.settings.gcf_api_url.rstrip("/") + "/projects")
        if isinstance(data, dict):  # tolerate an enveloped reply
            data = data.get("data") or data.get("projects") or []
        if not isinstance(data, list):
            raise SourceUnavailable(f"gcf: expected a JSON array of projects, got {type(data).__name__}")
        self.pages_fetched += 1
        yield [r for r in data if isinstance(r, dict)]

    def normalise(self, r: dict[str, Any]) -> NormalisedGrant | None:
        ref = text(r.get("ApprovedRef")) or text(r.get("ProjectsID"))
        if not ref:
            return None
        place = [c.get("ISO3") or c.get("CountryName") for c in as_list(r.get("Countries")) if isinstance(c, dict)]
        areas = [a.get("Area") for a in as_list(r.get("ResultAreas")) if isinstance(a, dict)]
        names = [c.get("CountryName") for c in as_list(r.get("Countries")) if isinstance(c, dict)]
        entities = [e.get("Acronym") or e.get("Name") for e in as_list(r.get("Entities")) if isinstance(e, dict)]
        currency = next((f.get("Currency") for f in as_list(r.get("Funding")) if isinstance(f, dict)), None) or "USD"
        description = (
            f"{text(r.get('Theme'))} project ({text(r.get('Size'))}, {text(r.get('Sector'))} sector) in "
            f"{', '.join(n for n in names if n) or 'several countries'}, approved at board meeting "
            f"{text(r.get('BoardMeeting'))}. Result areas: {', '.join(a for a in areas if a) or 'n/a'}. "
            f"Accredited entities: {', '.join(e for e in entities if e) or 'n/a'}."
        )
        amount = parse_amount(r.get("TotalGCFFunding"))
        return NormalisedGrant(
            source=self.name,
            external_id=ref,
            title=text(r.get("ProjectName")) or ref,
            description=description,
            funder="Green Climate Fund",
            countries=countries(place),
            sectors=uniq(areas),
            themes=uniq([r.get("Theme")]),
            amount=amount,
            currency=currency if amount is not None else None,
            open_date=parse_datetime(r.get("StartDate")) or parse_datetime(r.get("ApprovalDate")),
            end_date=parse_datetime(r.get("EndDate")),
            status=_status(r),
            url=text(r.get("ProjectURL")) or f"https://www.greenclimate.fund/project/{ref.lower()}",
            modified=text(r.get("ApprovalDate")) or None,
            raw=r,
        )


def _status(r: dict[str, Any]) -> str:
    status = text(r.get("Status")).lower()
    if status in STATUS:
        return STATUS[status]
    now = datetime.now(UTC)
    if r.get("DateCancelled"):
        return "cancelled"
    done = parse_datetime(r.get("DateCompletion")) or parse_datetime(r.get("EndDate"))
    if done is not None and done < now:
        return "completed"
    return "active"
