"""The grant source adapters: the real public endpoints unless pointed elsewhere (docs/grant-pipeline.md)."""

from __future__ import annotations

from pydantic import Field
from taskfleet_core.settings import FromEnvironment


class GrantSourceSettings(FromEnvironment):
    world_bank_api_url: str = Field("https://search.worldbank.org/api/v3/projects", description="World Bank")
    iati_api_url: str = Field("https://api.iatistandard.org/datastore", description="IATI Datastore base")
    iati_api_key: str | None = Field(None, description="IATI subscription key (Ocp-Apim-Subscription-Key)")
    gcf_api_url: str = Field("https://api.gcfund.org/v1", description="Green Climate Fund open data API")
    cordis_data_url: str = Field("https://cordis.europa.eu/data", description="CORDIS bulk open data")
    eu_portal_api_url: str = Field(
        "https://api.tech.ec.europa.eu/search-api/prod/rest", description="EU Funding & Tenders search API"
    )
    eu_portal_api_key: str = Field("SEDIA", description="EU portal search API key (public)")
    grant_http_timeout_seconds: float = Field(30.0, gt=0, description="per-request timeout of source adapters")
    grant_http_retries: int = Field(4, ge=0, le=10, description="retries of a 5xx/timeout before a source fails")
    grant_http_backoff_seconds: float = Field(1.0, ge=0, description="first retry delay, doubled each time")
