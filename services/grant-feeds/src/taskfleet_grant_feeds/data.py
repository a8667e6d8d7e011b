"""The recorded records: the shared fixtures plus generated ones of the same shape, per source.

Deterministic (seeded) so tests can count, and dated relative to ``today`` so open calls
stay open whenever the tests run. A few projects appear in two sources on purpose (a GCF
or World Bank project that IATI also reports), which is what deduplication must collapse.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"

#: How many generated records each source gets besides its fixture record.
COUNTS = {"world_bank": 56, "iati": 60, "gcf": 31, "cordis_horizon": 21, "cordis_h2020": 18, "eu_portal": 44}

#: Words the generator combines into plausible records (fixtures/vocabulary.json).
_VOCABULARY = json.loads((FIXTURES / "vocabulary.json").read_text())
ACTIONS: list[Any] = _VOCABULARY["actions"]
PLACES: list[Any] = _VOCABULARY["places"]
BENEFITS: list[Any] = _VOCABULARY["benefits"]
WB_SECTORS: list[Any] = _VOCABULARY["wb_sectors"]
DAC_SECTORS: list[Any] = _VOCABULARY["dac_sectors"]
RESULT_AREAS: list[Any] = _VOCABULARY["result_areas"]
KEYWORDS: list[Any] = _VOCABULARY["keywords"]


def _iso(day: date) -> str:
    return day.isoformat() + "T00:00:00Z"


def _load(name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return record


@dataclass
class Feeds:
    """Every source's records, in the order the real APIs would list them."""

    world_bank: list[dict[str, Any]] = field(default_factory=list)
    iati: list[dict[str, Any]] = field(default_factory=list)
    gcf: list[dict[str, Any]] = field(default_factory=list)
    cordis_horizon: list[dict[str, Any]] = field(default_factory=list)
    cordis_h2020: list[dict[str, Any]] = field(default_factory=list)
    cordis_organizations: list[dict[str, Any]] = field(default_factory=list)
    eu_portal: list[dict[str, Any]] = field(default_factory=list)
    #: (source, external id) pairs that are the same project as another source's record
    duplicates: list[tuple[tuple[str, str], tuple[str, str]]] = field(default_factory=list)


def build(today: date | None = None, seed: int = 2026) -> Feeds:
    today = today or datetime.now(UTC).date()
    rng = random.Random(seed)
    feeds = Feeds()
    _world_bank(feeds, rng, today)
    _gcf(feeds, rng, today)
    _iati(feeds, rng, today)
    _cordis(feeds, rng, today)
    _eu_portal(feeds, rng, today)
    return feeds


def _title(rng: random.Random, place: tuple[str, str, str, str], i: int) -> str:
    action = ACTIONS[(i * 7 + rng.randrange(3)) % len(ACTIONS)]
    return f"{action} in {place[0]} (phase {1 + i % 3})"


def _world_bank(feeds: Feeds, rng: random.Random, today: date) -> None:
    feeds.world_bank.append(_load("worldbank_v3_project.json"))
    for i in range(COUNTS["world_bank"]):
        place = PLACES[i % len(PLACES)]
        approved = today - timedelta(days=30 * (i + 1))
        code, major, sector, sector_code = WB_SECTORS[i % len(WB_SECTORS)]
        amount = 5_000_000 * (1 + i % 19)
        status = ["Active", "Active", "Pipeline", "Closed", "Active", "Dropped"][i % 6]
        closing = approved + timedelta(days=365 * 5) if status != "Closed" else today - timedelta(days=40 + i)
        feeds.world_bank.append(
            {
                "id": f"P5{10000 + i:05d}",
                "project_name": _title(rng, place, i),
                "countryshortname": place[0],
                "countrycode": [place[1]],
                "regionname": place[3],
                "status": status,
                "boardapprovaldate": approved.isoformat() + "T00:00:00Z",
                "closingdate": closing.isoformat(),
                "totalamt": str(amount),
                "curr_total_commitment": str(amount),
                "grantamt": str(amount // 4 if i % 3 == 0 else 0),
                "pdo": f"The project {BENEFITS[i % len(BENEFITS)]} in {place[0]}.",
                "major_sectors": [
                    {
                        "major_sector": {
                            "major_sector_code": code,
                            "major_sector_name": major,
                            "sectors": [{"sector_name": sector, "sector_code": sector_code, "sector_percent": "100"}],
                        }
                    }
                ],
                "themev2_level1_exact": ["Climate change", "Environment and Natural Resource Management"][: 1 + i % 2],
            }
        )


def _gcf(feeds: Feeds, rng: random.Random, today: date) -> None:
    feeds.gcf.append(_load("gcf_project.json"))
    for i in range(COUNTS["gcf"]):
        place = PLACES[(i + 3) % len(PLACES)]
        area, kind = RESULT_AREAS[i % len(RESULT_AREAS)]
        start = today - timedelta(days=90 * (i + 1))
        end = start + timedelta(days=30 * (36 + 12 * (i % 4)))
        funding = 10_000_000 + 2_500_000 * i
        record: dict[str, Any] = {
            "ProjectsID": 13100 + i,
            "ApprovedRef": f"FP{200 + i:03d}",
            "BoardMeeting": f"B.{30 + i % 12}",
            "ProjectName": _title(rng, place, i + 100),
            "StartDate": None if i % 9 == 4 else start.isoformat() + "T00:00:00.000Z",
            "EndDate": end.isoformat() + "T00:00:00.000Z",
            "ApprovalDate": (start - timedelta(days=200)).isoformat() + "T00:00:00.000Z",
            "DurationMonths": 36 + 12 * (i % 4),
            "Theme": kind if i % 4 else "Cross-cutting",
            "Sector": ["Public", "Private"][i % 2],
            "Size": ["Micro", "Small", "Medium", "Large"][i % 4],
            "RiskCategory": f"Category {'ABC'[i % 3]}",
            "TotalGCFFunding": funding,
            "TotalCoFinancing": funding // 2,
            "TotalValue": funding + funding // 2,
            "ProjectURL": f"https://www.greenclimate.fund/project/fp{200 + i:03d}",
            "Countries": [
                {
                    "CountryID": 100 + PLACES.index(place),
                    "CountryName": place[0],
                    "ISO3": place[2],
                    "Region": place[3],
                    "LDCs": i % 2 == 0,
                    "SIDS": place[0] == "Fiji",
                }
            ],
            "Entities": [{"EntityID": 40 + i % 5, "Acronym": ["UNDP", "FAO", "IUCN", "AFD", "WB"][i % 5]}],
            "Funding": [{"Source": "GCF", "Instrument": "Grants", "Budget": funding, "Currency": "USD"}],
            "ResultAreas": [{"Area": area, "Type": kind, "Value": "100.00%"}],
        }
        if i % 10 != 7:  # schema drift: a 2023-style record without the status fields
            completed = end < today
            record |= {
                "Status": "Completed" if completed else "Under Implementation",
                "DateCompletion": record["EndDate"] if completed else None,
                "DateCancelled": None,
            }
        feeds.gcf.append(record)


def _iati(feeds: Feeds, rng: random.Random, today: date) -> None:
    fixture = _load("iati_activity.json")
    fixture["last_updated_datetime"] = _iso(today - timedelta(days=400))
    feeds.iati.append(fixture)
    for i in range(COUNTS["iati"]):
        place = PLACES[(i + 5) % len(PLACES)]
        code, narrative = DAC_SECTORS[i % len(DAC_SECTORS)]
        start = today - timedelta(days=60 * (i + 1))
        end = start + timedelta(days=365 * 4)
        budget = 250_000.0 * (1 + i % 23)
        org_ref, org = [("GB-GOV-1", "UK - Foreign, Commonwealth and Development Office"), ("XM-DAC-41114", "UNDP")][
            i % 2
        ]
        feeds.iati.append(
            {
                "iati_identifier": f"{org_ref}-{300000 + i}",
                "reporting_org_ref": org_ref,
                "reporting_org_narrative": [org],
                "title_narrative": [_title(rng, place, i + 200)],
                "description_narrative": [f"This activity {BENEFITS[(i + 2) % len(BENEFITS)]} in {place[0]}."],
                "activity_status_code": ["2", "2", "1", "3", "4", "2"][i % 6],
                "activity_date_type": ["1", "2", "3"],
                "activity_date_iso_date": [_iso(start), _iso(start + timedelta(days=20)), _iso(end)],
                "recipient_country_code": [place[1]],
                "recipient_country_narrative": [place[0]],
                "sector_code": [code],
                "sector_narrative": [narrative],
                "sector_vocabulary": ["1"],
                "sector_percentage": [100.0],
                "default_currency": ["USD", "GBP", "EUR"][i % 3],
                "budget_value": [budget / 2, budget / 2],
                "budget_period_start_iso_date": [_iso(start), _iso(start + timedelta(days=365))],
                "budget_period_end_iso_date": [_iso(start + timedelta(days=364)), _iso(end)],
                "transaction_value": [budget / 4],
                "transaction_transaction_type_code": ["3"],
                "last_updated_datetime": _iso(today - timedelta(days=3 * i)),
            }
        )
    # The same projects as reported by their funders to IATI: deduplication collapses these.
    for source, record, title_variant in (
        ("gcf", feeds.gcf[3], str.upper),
        ("gcf", feeds.gcf[8], lambda t: t.replace(" (", ", ").replace(")", "")),
        ("world_bank", feeds.world_bank[5], lambda t: f"{t} Project"),  # differs: found by embeddings
    ):
        if source == "gcf":
            ext, title, amount, funder, ref = (
                record["ApprovedRef"],
                record["ProjectName"],
                float(record["TotalGCFFunding"]),
                "Green Climate Fund",
                "XM-DAC-47129",
            )
            country = next(p[1] for p in PLACES if p[2] == record["Countries"][0]["ISO3"])
        else:
            ext, title, amount, funder, ref = (
                record["id"],
                record["project_name"],
                float(record["totalamt"]),
                "World Bank",
                "44000",
            )
            country = record["countrycode"][0]
        iati_id = f"{ref}-{ext}"
        feeds.iati.append(
            {
                "iati_identifier": iati_id,
                "reporting_org_ref": ref,
                "reporting_org_narrative": [funder],
                "title_narrative": [title_variant(title)],
                "description_narrative": ["Activity reported to IATI by the funder."],
                "activity_status_code": "2",
                "activity_date_type": ["2"],
                "activity_date_iso_date": [_iso(today - timedelta(days=100))],
                "recipient_country_code": [country],
                "default_currency": "USD",
                "budget_value": [amount],
                "last_updated_datetime": _iso(today - timedelta(days=1)),
            }
        )
        feeds.duplicates.append(((source, ext), ("iati", iati_id)))


def _cordis(feeds: Feeds, rng: random.Random, today: date) -> None:
    fixture = _load("cordis_project.json")
    feeds.cordis_horizon.append(fixture)
    feeds.cordis_organizations.append({"projectID": fixture["id"], "name": "SolDAC Coordinator", "country": "ES"})
    for layout, count, programme, first_id in (
        ("cordis_horizon", COUNTS["cordis_horizon"], "HORIZON", 101100000),
        ("cordis_h2020", COUNTS["cordis_h2020"], "H2020", 860000),
    ):
        for i in range(count):
            kw = KEYWORDS[i % len(KEYWORDS)]
            start = today - timedelta(days=120 * (i + 1))
            end = start + timedelta(days=365 * 3)
            cost = 1_500_000 + 125_000.5 * i
            pid = str(first_id + i * 37)
            status = "CLOSED" if end < today else ("TERMINATED" if i % 11 == 5 else "SIGNED")
            call = f"{programme}-CL5-{2021 + i % 3}-D{1 + i % 4}-01"
            record = {
                "id": pid,
                "acronym": f"{kw[0].split()[0].upper()[:6]}{i}",
                "status": status,
                "title": f"{kw[0].capitalize()} and {kw[1]} for a climate-neutral Europe ({programme} {i})",
                "startDate": start.isoformat(),
                "endDate": end.isoformat(),
                # decimal comma, as the CSV / extraction-tool exports write it, on some records
                "totalCost": f"{cost:.2f}" if i % 4 else f"{cost:.2f}".replace(".", ","),
                "ecMaxContribution": f"{cost:.2f}" if i % 4 else f"{cost:.2f}".replace(".", ","),
                "legalBasis": f"{programme}.2.5",
                "topics": f"{call}-{10 + i}",
                "masterCall": call,
                "subCall": call,
                "fundingScheme": f"{programme}-RIA",
                "objective": f"The project develops {kw[1]} and {kw[2]} that {BENEFITS[i % len(BENEFITS)]}.",
                "keywords": ", ".join(kw),
                "ecSignatureDate": (start - timedelta(days=90)).isoformat(),
                "contentUpdateDate": f"{(today - timedelta(days=5 * i)).isoformat()} 10:00:00",
                "rcn": str(240000 + i + (0 if programme == "HORIZON" else 5000)),
                "grantDoi": f"10.3030/{pid}",
            }
            if layout == "cordis_h2020":
                record["frameworkProgramme"] = programme
            getattr(feeds, layout).append(record)
            for j, country in enumerate(["DE", "EL", "UK", "FR", "IT"][: 1 + i % 3]):
                feeds.cordis_organizations.append(
                    {"projectID": pid, "name": f"Partner {j} of {pid}", "country": country, "role": "participant"}
                )


def _budget_overview(topic: str, amount: int, deadline: str) -> str:
    """The portal's double-encoded ``budgetOverview``: a JSON string inside the list-wrapped metadata."""
    inner = {
        "budgetTopicActionMap": {
            "1": [
                {
                    "action": f"{topic} - HORIZON-RIA",
                    "plannedOpeningDate": "",
                    "deadlineModel": "single-stage",
                    "deadlineDates": [deadline],
                    "budgetYearMap": {"2026": amount // 2, "2027": amount - amount // 2},
                    "budgetTopicActionMap": {},
                    "expectedGrants": 3,
                    "minContribution": amount // 6,
                    "maxContribution": amount // 3,
                }
            ]
        }
    }
    return json.dumps(inner)


def _eu_portal(feeds: Feeds, rng: random.Random, today: date) -> None:
    feeds.eu_portal.append(_load("eu_ft_sedia_result.json"))
    for i in range(COUNTS["eu_portal"]):
        kw = KEYWORDS[(i + 1) % len(KEYWORDS)]
        topic = f"HORIZON-CL{4 + i % 3}-2026-D{1 + i % 5}-01-{i + 1:02d}"
        # 0..5 Open, forthcoming or closed; the last ones closed with deadlines long gone
        kind = ["open", "open", "forthcoming", "open", "closed"][i % 5]
        if kind == "closed":
            start, deadline = today - timedelta(days=300), today - timedelta(days=30 + i)
        elif kind == "forthcoming":
            start, deadline = today + timedelta(days=20 + i), today + timedelta(days=150 + i)
        else:
            start, deadline = today - timedelta(days=40), today + timedelta(days=30 + 3 * i)
        status = {"forthcoming": "31094501", "open": "31094502", "closed": "31094503"}[kind]
        deadline_s = f"{deadline.isoformat()}T17:00:00.000+0200"
        amount = 4_000_000 + 500_000 * (i % 13)
        stage = ["demonstrators", "pilots at scale", "enabling solutions"][i // len(ACTIONS)]
        title = f"{kw[0].capitalize()}: {ACTIONS[i % len(ACTIONS)].lower()} {stage} for Europe"
        feeds.eu_portal.append(
            {
                "reference": f"{46000000 + i}HORIZONResearchandInnovationActions{1700000000000 + i}",
                "url": f"https://ec.europa.eu/info/funding-tenders/opportunities/data/topicDetails/{topic}.json",
                "title": None,
                "summary": None if i % 3 else f"Call topic on {kw[1]}",
                "databaseLabel": "SEDIA",
                "language": "en",
                "content": f"{title}. Proposals should address {kw[1]} and {kw[2]}; the action "
                f"{BENEFITS[i % len(BENEFITS)]}.",
                "metadata": {
                    "identifier": [topic],
                    "callIdentifier": [topic.rsplit("-", 1)[0]],
                    "title": [title],
                    "type": ["1"],
                    "status": [status],
                    "frameworkProgramme": ["43108390"],
                    "programmePeriod": ["2021 - 2027"],
                    "startDate": [f"{start.isoformat()}T01:00:00.000+0100"],
                    "deadlineDate": [deadline_s],
                    "deadlineModel": ["single-stage"],
                    "typesOfAction": ["HORIZON  Research and Innovation Actions"],
                    # keywords: a JSON-encoded string on most records, plain strings on some (drift)
                    "keywords": [json.dumps(kw)] if i % 4 else kw,
                    "budgetOverview": [_budget_overview(topic, amount, deadline_s)],
                    "ccm2Id": [str(46000000 + i)],
                },
            }
        )
