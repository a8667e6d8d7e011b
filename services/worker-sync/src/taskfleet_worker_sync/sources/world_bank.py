"""World Bank Projects API (v2/v3): offset paging over a dict keyed by project id.

Incremental syncs ask for projects approved on or after the watermark (``strdate``); the weekly
full sync re-reads everything, which is how changes to older projects arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from taskfleet_worker_sync.normalise import NormalisedGrant, as_list, countries, parse_amount, parse_datetime, text
from taskfleet_worker_sync.normalise import unique as uniq
from taskfleet_worker_sync.sources.base import SourceAdapter

ROWS = 500
STATUS = {"active": "active", "pipeline": "pipeline", "closed": "closed", "dropped": "cancelled"}


class WorldBankAdapter(SourceAdapter):
    name = "world_bank"

    @property
    def is_v2(self) -> bool:
        return "/v2/" in self.settings.world_bank_api_url

    async def pages(
        self, *, full: bool, watermark: str | None, max_pages: int | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        params: dict[str, Any] = {"format": "json", "fl": "*", "rows": ROWS, "srt": "boardapprovaldate", "order": "asc"}
        if not full and watermark:
            params["strdate"] = watermark[:10]
        offset = 0
        while not self.page_limit_reached(max_pages):
            data = await self.get_json(self.settings.world_bank_api_url, params={**params, "os": offset})
            projects = data.get("projects") or {}
            records = list(projects.values()) if isinstance(projects, dict) else list(projects)
            records = [r for r in records if isinstance(r, dict) and r.get("id")]
            if not records:
                return
            self.pages_fetched += 1
            yield records
            offset += len(records)
            if offset >= int(str(data.get("total") or 0).replace(",", "") or 0):
                return

    def normalise(self, r: dict[str, Any]) -> NormalisedGrant | None:
        amount = _amount(r, self.is_v2)
        sectors = [s.get("Name") for k, s in sorted(r.items()) if k.startswith("sector") and isinstance(s, dict)]
        for major in as_list(r.get("major_sectors")):
            block = major.get("major_sector", major) if isinstance(major, dict) else {}
            sectors.append(block.get("major_sector_name"))
            sectors.extend(s.get("sector_name") for s in as_list(block.get("sectors")) if isinstance(s, dict))
        themes = as_list(r.get("themev2_level1_exact")) + [
            t.get("name") for t in as_list(r.get("theme_list")) if isinstance(t, dict)
        ]
        pid = str(r["id"])
        return NormalisedGrant(
            source=self.name,
            external_id=pid,
            title=text(r.get("project_name")) or pid,
            description=text(r.get("pdo")) or text(r.get("project_abstract")),
            funder="World Bank",
            countries=countries(as_list(r.get("countrycode")) or [r.get("countryshortname")]),
            sectors=uniq(sectors),
            themes=uniq(themes),
            amount=amount,
            currency="USD" if amount is not None else None,
            open_date=parse_datetime(r.get("boardapprovaldate")),
            end_date=parse_datetime(r.get("closingdate")),
            status=STATUS.get(text(r.get("status")).lower(), "active"),
            url=text(r.get("url")) or f"https://projects.worldbank.org/en/projects-operations/project-detail/{pid}",
            modified=text(r.get("boardapprovaldate")) or None,
            raw=r,
        )


def _amount(r: dict[str, Any], v2: bool) -> Decimal | None:
    """Total commitment in US$: ``totalamt`` / ``totalcommamt``; ``curr_total_commitment`` is in millions in v2."""
    for key in ("totalamt", "totalcommamt", "lendprojectcost"):
        value = parse_amount(r.get(key))
        if value:
            return value
    value = parse_amount(r.get("curr_total_commitment"))
    if value:
        return value * 1_000_000 if v2 else value
    return parse_amount(r.get("grantamt")) or None
