"""A small hand-checked world: grants a reader can rank by eye, two companies, their users.

Nordwind (DE, energy) builds offshore wind foundations: the offshore wind call open to DE is
its obvious first match, the any-country energy storage call its second. Shamba (KE,
agriculture) does irrigation for smallholders: the Kenyan agriculture call comes first for it.
A duplicate of the wind call, a wind call past its deadline and a closed wind call must never
appear, however similar their text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from taskfleet_data.accounts import Company, User
from taskfleet_data.db import session_for
from taskfleet_data.embeddings import encode, get_embedder, grant_text
from taskfleet_data.models import Grant

GRANTS: dict[str, dict[str, Any]] = {
    "wind": dict(
        title="Offshore wind energy innovation for North Sea coastal SMEs",
        description="Floating offshore wind turbine foundations, installation vessels and grid connection.",
        countries=["DE", "NL", "DK"],
        sectors=["energy"],
        days=60,
    ),
    "storage": dict(
        title="Battery storage for renewable energy grids",
        description="Grid-scale batteries and storage that let wind and solar energy reach the grid.",
        countries=[],
        sectors=["energy"],
        days=45,
    ),
    "kenya": dict(
        title="Climate resilience for smallholder agriculture in Kenya",
        description="Drip irrigation, drought tolerant crops and water harvesting for smallholder farmers.",
        countries=["KE"],
        sectors=["agriculture"],
        days=90,
    ),
    "buses": dict(
        title="Urban mobility: electric buses for French cities",
        description="Electric bus fleets, charging depots and public transport planning.",
        countries=["FR"],
        sectors=["transport"],
        days=120,
    ),
    "wind_duplicate": dict(
        title="Offshore wind energy innovation for North Sea coastal SMEs",
        description="Floating offshore wind turbine foundations, installation vessels and grid connection.",
        countries=["DE", "NL", "DK"],
        sectors=["energy"],
        days=60,
        duplicate_of="wind",
    ),
    "wind_expired": dict(
        title="Offshore wind turbine foundations research",
        description="Floating offshore wind turbine foundations.",
        countries=["DE"],
        sectors=["energy"],
        days=-2,
    ),
    "wind_closed": dict(
        title="Offshore wind foundations pilot",
        description="Floating offshore wind turbine foundations pilot projects.",
        countries=["DE"],
        sectors=["energy"],
        days=30,
        status="closed",
        is_active=False,
    ),
}

COMPANIES: dict[str, dict[str, Any]] = {
    "nordwind": dict(
        name="Nordwind Fundamente GmbH",
        country="DE",
        sectors=["energy"],
        description="We design and install floating offshore wind turbine foundations in the North Sea.",
    ),
    "shamba": dict(
        name="Shamba Irrigation Ltd",
        country="KE",
        sectors=["agriculture"],
        description="Solar powered drip irrigation and water harvesting for smallholder farmers.",
    ),
}


@dataclass
class World:
    grants: dict[str, int] = field(default_factory=dict)
    companies: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)


def grant_row(key: str, spec: dict[str, Any], now: datetime, ids: dict[str, int], tag: str) -> Grant:
    embedder = get_embedder()
    vector = embedder.embed([grant_text(spec["title"], spec["description"])])[0]
    days = spec["days"]
    return Grant(
        source="cordis",
        external_id=f"{tag}-{key}",
        title=spec["title"],
        description=spec["description"],
        countries=spec["countries"],
        sectors=spec["sectors"],
        themes=[],
        deadline=None if days is None else now + timedelta(days=days),
        status=spec.get("status", "open"),
        is_active=spec.get("is_active", True),
        url=f"https://example.org/grants/{tag}-{key}",
        content_hash=hashlib.sha256(f"{tag}{key}".encode()).hexdigest(),
        embedding=encode(vector),
        embedding_model=embedder.name,
        duplicate_of_id=ids.get(spec.get("duplicate_of", "")),
        raw={},
    )


async def seed_world(url: str, tag: str, *, grants: dict[str, dict[str, Any]] = GRANTS) -> World:
    """Insert the grants and companies above (``tag`` keeps external ids unique per test)."""
    now = datetime.now(UTC)
    world = World()
    async with session_for(url) as session, session.begin():
        for key, spec in grants.items():  # canonical grants first: duplicates point at them
            row = grant_row(key, spec, now, world.grants, tag)
            session.add(row)
            await session.flush()
            world.grants[key] = row.id
        for key, spec in COMPANIES.items():
            company = Company(**{**spec, "name": f"{spec['name']} {tag}"})
            session.add(company)
            await session.flush()
            world.companies[key] = company.id
    return world


async def add_user(url: str, company_id: int, email: str, **extra: Any) -> int:
    async with session_for(url) as session, session.begin():
        user = User(email=email, company_id=company_id, **extra)
        session.add(user)
        await session.flush()
        return user.id
