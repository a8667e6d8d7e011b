"""EU Funding & Tenders portal search API (SEDIA): multipart POST, 1-based pages, list-wrapped metadata.

Every metadata value is a list; ``budgetOverview`` is a JSON string that needs a second parse;
``keywords`` may be a JSON-encoded string. Status codes: 31094501 Forthcoming, 31094502 Open,
31094503 Closed (the live-verified reading). Incremental syncs ask for forthcoming and open
calls only (``terms`` works; ``range`` is silently ignored by the API, so dates are not filtered
server-side); full syncs also re-read closed ones.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from taskfleet_worker_sync.normalise import (
    NormalisedGrant,
    decode_json_list,
    first,
    parse_amount,
    parse_datetime,
    text,
)
from taskfleet_worker_sync.normalise import unique as uniq
from taskfleet_worker_sync.sources.base import SourceAdapter

PAGE_SIZE = 100
STATUS = {"31094501": "forthcoming", "31094502": "open", "31094503": "closed"}
GRANT_TYPES = ["1"]  # 1 = grant topics (2 = tenders)
TOPIC_PAGE = "https://ec.europa.eu/info/funding-tenders/opportunities/portal/screen/opportunities/topic-details/{}"


class EuPortalAdapter(SourceAdapter):
    name = "eu_portal"

    def query(self, full: bool) -> dict[str, Any]:
        statuses = ["31094501", "31094502"] + (["31094503"] if full else [])
        return {"bool": {"must": [{"terms": {"type": GRANT_TYPES}}, {"terms": {"status": statuses}}]}}

    async def pages(
        self, *, full: bool, watermark: str | None, max_pages: int | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        url = self.settings.eu_portal_api_url.rstrip("/") + "/search"
        files = {
            "query": ("blob", json.dumps(self.query(full)), "application/json"),
            "languages": ("blob", json.dumps(["en"]), "application/json"),
            "sort": ("blob", json.dumps({"field": "sortStatus", "order": "ASC"}), "application/json"),
        }
        number, seen = 1, 0
        while not self.page_limit_reached(max_pages):
            params = {"apiKey": self.settings.eu_portal_api_key, "text": "***", "pageSize": PAGE_SIZE}
            response = await self.request("POST", url, params={**params, "pageNumber": number}, files=files)
            data = response.json()
            results = [r for r in data.get("results") or [] if isinstance(r, dict)]
            if not results:
                return
            self.pages_fetched += 1
            yield results
            seen += len(results)
            if seen >= int(data.get("totalResults") or 0):
                return
            number += 1

    def normalise(self, r: dict[str, Any]) -> NormalisedGrant | None:
        meta = r.get("metadata") or {}
        ident = text(meta.get("identifier")) or text(r.get("reference"))
        if not ident:
            return None
        amount = budget(meta.get("budgetOverview"))
        title = text(meta.get("title")) or text(r.get("title")) or text(r.get("content"))[:300] or ident
        return NormalisedGrant(
            source=self.name,
            external_id=ident,
            title=title,
            description=text(r.get("content")) or text(r.get("summary")),
            funder="European Commission",
            countries=[],
            sectors=decode_json_list(meta.get("keywords")),
            themes=uniq(" ".join(text(t).split()) for t in meta.get("typesOfAction") or []),
            amount=amount,
            currency="EUR" if amount is not None else None,
            open_date=parse_datetime(meta.get("startDate")),
            deadline=parse_datetime(meta.get("deadlineDate")),
            status=STATUS.get(text(meta.get("status")), "open"),
            url=TOPIC_PAGE.format(ident),
            modified=None,
            raw=r,
        )


def budget(value: Any) -> Decimal | None:
    """Total of ``budgetYearMap`` over every action of the double-encoded ``budgetOverview``."""
    raw = first(value)
    if not raw:
        return None
    try:
        overview = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return None
    total = Decimal(0)
    for actions in (overview.get("budgetTopicActionMap") or {}).values():
        for action in actions if isinstance(actions, list) else [actions]:
            for amount in (action.get("budgetYearMap") or {}).values():
                total += parse_amount(amount) or Decimal(0)
    return total or None
