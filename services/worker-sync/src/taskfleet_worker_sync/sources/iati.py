"""IATI Datastore (Solr): ``start``/``rows`` paging sorted by identifier, subscription-key header.

Paging advances by the number of docs received and stops at ``numFound`` -- not when a page is
shorter than ``rows``, since the server may cap ``rows`` below what was asked. Incremental syncs
filter on ``last_updated_datetime`` from the watermark.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from taskfleet_worker_sync.normalise import NormalisedGrant, as_list, countries, parse_amount, parse_datetime, text
from taskfleet_worker_sync.normalise import unique as uniq
from taskfleet_worker_sync.sources.base import SourceAdapter, SourceRejected

ROWS = 1000
#: IATI ActivityStatus codelist
STATUS = {"1": "pipeline", "2": "active", "3": "completed", "4": "closed", "5": "cancelled", "6": "closed"}
#: IATI ActivityDateType: 1 planned start, 2 actual start, 3 planned end, 4 actual end
START_TYPES, END_TYPES = ("2", "1"), ("4", "3")


class IatiAdapter(SourceAdapter):
    name = "iati"

    async def pages(
        self, *, full: bool, watermark: str | None, max_pages: int | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        key = self.settings.iati_api_key
        if not key:
            raise SourceRejected("iati: IATI_API_KEY is not set (the Datastore needs a subscription key)")
        query = "*:*" if full or not watermark else f"last_updated_datetime:[{watermark} TO *]"
        url = self.settings.iati_api_url.rstrip("/") + "/activity/select"
        start = 0
        while not self.page_limit_reached(max_pages):
            params = {"q": query, "rows": ROWS, "start": start, "sort": "iati_identifier asc", "wt": "json"}
            data = await self.get_json(url, params=params, headers={"Ocp-Apim-Subscription-Key": key})
            response = data.get("response") or {}
            docs = [d for d in response.get("docs") or [] if isinstance(d, dict) and d.get("iati_identifier")]
            if not docs:
                return
            self.pages_fetched += 1
            yield docs
            start += len(response.get("docs") or [])
            if start >= int(response.get("numFound") or 0):
                return

    def normalise(self, r: dict[str, Any]) -> NormalisedGrant | None:
        ident = text(r.get("iati_identifier"))
        dates = dict(zip(as_list(r.get("activity_date_type")), as_list(r.get("activity_date_iso_date")), strict=False))
        amount, currency = _money(r)
        sectors = as_list(r.get("sector_narrative")) or [f"DAC {c}" for c in as_list(r.get("sector_code"))]
        return NormalisedGrant(
            source=self.name,
            external_id=ident,
            title=text(r.get("title_narrative")) or ident,
            description=text(r.get("description_narrative")),
            funder=text(r.get("reporting_org_narrative")) or text(r.get("reporting_org_ref")) or None,
            countries=countries(as_list(r.get("recipient_country_code"))),
            sectors=uniq(sectors),
            themes=[],
            amount=amount,
            currency=currency,
            open_date=next((parse_datetime(dates[t]) for t in START_TYPES if t in dates), None),
            end_date=next((parse_datetime(dates[t]) for t in END_TYPES if t in dates), None),
            status=STATUS.get(text(r.get("activity_status_code")), "active"),
            url=f"https://d-portal.org/ctrack.html#view=act&aid={ident}",
            modified=text(r.get("last_updated_datetime")) or None,
            raw=r,
        )


def _money(r: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    """Sum of budgets; without budgets, the sum of commitments (transaction type 2)."""
    currency = text(r.get("default_currency")) or None
    budgets = [parse_amount(v) for v in as_list(r.get("budget_value"))]
    total = sum((b for b in budgets if b is not None), Decimal(0))
    if not total:
        pairs = zip(
            as_list(r.get("transaction_value")), as_list(r.get("transaction_transaction_type_code")), strict=False
        )
        total = sum((parse_amount(v) or Decimal(0) for v, t in pairs if str(t) == "2"), Decimal(0))
    return (total, currency) if total else (None, None)
