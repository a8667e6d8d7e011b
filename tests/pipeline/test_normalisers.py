"""Normalisers against the shared fixtures and the schema drift the reference lists (no network, no database)."""

from __future__ import annotations

import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from taskfleet_worker_sync.normalise import parse_amount, parse_datetime
from taskfleet_worker_sync.settings import GrantSourceSettings
from taskfleet_worker_sync.sources import ADAPTERS
from taskfleet_worker_sync.sources.cordis import read_zip
from taskfleet_worker_sync.sources.eu_portal import budget

FIXTURES = Path(__file__).resolve().parents[2] / "services/grant-feeds/src/taskfleet_grant_feeds/fixtures"


def adapter(source: str, **settings: str):
    return ADAPTERS[source](client=None, settings=GrantSourceSettings(**settings))  # type: ignore[arg-type]


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (95000000, "95000000.00"),
        ("150,000,000", "150000000.00"),
        ("2073781.25", "2073781.25"),
        ("2073781,25", "2073781.25"),
        ("1.234.567,50", "1234567.50"),
        ("1,234,567.50", "1234567.50"),
        ("1.234.567", "1234567.00"),
        (["6240000"], "6240000.00"),
        ("n/a", None),
        (None, None),
    ],
)
def test_amounts_in_every_shape(raw, expected):
    assert parse_amount(raw) == (Decimal(expected) if expected else None)


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2030-06-30", "2030-06-30T00:00:00+00:00"),
        ("2026-01-29T00:00:00Z", "2026-01-29T00:00:00+00:00"),
        ("1/21/1999 12:00:00 AM", "1999-01-21T00:00:00+00:00"),
        (["2024-04-18T19:00:00.000+0200"], "2024-04-18T17:00:00+00:00"),
        ("2026-03-27 15:10:23", "2026-03-27T15:10:23+00:00"),
        (1701907200000, "2023-12-07T00:00:00+00:00"),
    ],
)
def test_dates_in_every_shape(raw, iso):
    assert parse_datetime(raw).isoformat() == iso


def test_world_bank_v3_fixture():
    g = adapter("world_bank").normalise(fixture("worldbank_v3_project.json"))
    assert (g.external_id, g.title, g.funder) == ("P508961", "Sustainable and Inclusive Finance", "World Bank")
    assert (g.amount, g.currency, g.countries, g.status) == (Decimal("95000000.00"), "USD", ["NP"], "active")
    assert g.sectors == ["Financial Sector", "Banking Institutions"]
    assert g.themes == ["Data Ecosystem", "Digital Transformation"]
    assert g.end_date.date().isoformat() == "2030-06-30" and g.deadline is None


def test_world_bank_v2_shapes():
    """v2: separators in amounts, cdata abstract, US-style dates, sector1..n, commitment in millions."""
    raw = {
        "id": "P000301",
        "project_name": "Rural Water Supply",
        "countrycode": ["KE"],
        "status": "Closed",
        "totalamt": "0",
        "curr_total_commitment": "280",
        "project_abstract": {"cdata!": "Provides  clean water to rural districts."},
        "closingdate": "1/21/1999 12:00:00 AM",
        "sector1": {"Name": "Water supply", "Percent": 60},
        "sector2": {"Name": "Sanitation", "Percent": 40},
    }
    g = adapter("world_bank", world_bank_api_url="https://search.worldbank.org/api/v2/projects").normalise(raw)
    assert g.amount == Decimal("280000000.00") and g.status == "closed"
    assert g.description == "Provides clean water to rural districts."
    assert g.sectors == ["Water supply", "Sanitation"] and g.end_date.year == 1999
    assert adapter("world_bank").normalise(raw | {"totalamt": "150,000,000"}).amount == Decimal("150000000.00")


def test_iati_fixture():
    g = adapter("iati").normalise(fixture("iati_activity.json"))
    assert g.funder == "United Nations Development Programme" and g.countries == ["UG"]
    assert (g.amount, g.currency, g.status) == (Decimal("1250000.00"), "USD", "active")
    assert g.open_date.date().isoformat() == "2023-02-15"  # actual start (type 2) before planned (1)
    assert g.end_date.date().isoformat() == "2026-12-31" and g.sectors == ["DAC 31120"]


def test_iati_without_budgets_uses_commitments():
    raw = fixture("iati_activity.json") | {
        "budget_value": [],
        "transaction_value": [100.0, 250.0, 40.0],
        "transaction_transaction_type_code": ["2", "2", "3"],
    }
    assert adapter("iati").normalise(raw).amount == Decimal("350.00")


def test_gcf_fixture_and_missing_status_fields():
    raw = fixture("gcf_project.json")
    g = adapter("gcf").normalise(raw)
    assert (g.external_id, g.funder, g.countries) == ("FP001", "Green Climate Fund", ["PE"])
    assert (g.amount, g.status, g.sectors) == (Decimal("6240000.00"), "completed", ["Forest and land use"])
    drifted = {k: v for k, v in raw.items() if k not in {"Status", "DateCompletion", "DateCancelled"}}
    assert adapter("gcf").normalise(drifted | {"EndDate": "2099-01-01T00:00:00.000Z"}).status == "active"
    assert adapter("gcf").normalise(drifted | {"StartDate": None}).open_date.year == 2015  # falls back to approval


def test_cordis_fixture_and_status_mapping():
    g = adapter("cordis").normalise(fixture("cordis_project.json") | {"_countries": ["EL", "UK", "DE"]})
    assert (g.external_id, g.amount, g.currency) == ("101069359", Decimal("2073781.25"), "EUR")
    assert g.countries == ["GR", "GB", "DE"] and g.sectors == ["solar energy", "direct air capture"]
    assert adapter("cordis").normalise({"id": "1", "status": "TERMINATED"}).status == "cancelled"


@pytest.mark.parametrize("layout", ["project.json array", "one file per project"])
def test_cordis_reads_both_zip_layouts(layout):
    project = fixture("cordis_project.json")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if layout == "project.json array":
            archive.writestr("json/project.json", json.dumps([project]))
        else:
            archive.writestr("project-rcn-237915_en.json", json.dumps({k: v for k, v in project.items()}))
        archive.writestr("json/organization.json", json.dumps([{"projectID": "101069359", "country": "ES"}]))
    (record,) = read_zip(buffer)
    assert record["id"] == "101069359" and record["_countries"] == ["ES"]


def test_eu_portal_fixture_list_wrapped_and_double_encoded():
    raw = fixture("eu_ft_sedia_result.json")
    g = adapter("eu_portal").normalise(raw)
    assert g.external_id == "HORIZON-CL5-2024-D2-01-03"
    assert g.title.startswith("Development of technical and business solutions")  # top-level title is null
    assert g.status == "forthcoming"  # 31094501, the live-verified reading
    assert g.effective_status() == "closed" and not g.is_active()  # its deadline (2024) has passed
    assert g.sectors == ["Energy storage", "batteries", "sustainability"]  # keywords: a JSON string in a list
    assert g.deadline.isoformat() == "2024-04-18T17:00:00+00:00"
    overview = json.dumps({"budgetTopicActionMap": {"1": [{"budgetYearMap": {"2024": 30000000, "2025": "5,000,000"}}]}})
    assert budget([overview]) == Decimal("35000000.00")
    assert budget(["not json"]) is None and budget(None) is None
