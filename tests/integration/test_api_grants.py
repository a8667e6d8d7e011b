"""``GET /api/v1/grants``: full-text search with filters and pagination, over the session's SQLite database."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from taskfleet_data import search
from taskfleet_data.db import migrated_engine, session_for
from taskfleet_data.models import Grant

TAG = uuid.uuid4().hex[:8]
WORD = f"zeolite{TAG}"  # a word only this module's grants contain


def _grant(n: int, *, source: str, countries: list[str], days: int | None, status: str = "open") -> Grant:
    now = datetime.now(UTC)
    return Grant(
        source=source,
        external_id=f"{TAG}-{n}",
        title=f"Solar {WORD} pilot {n}",
        description="Community energy storage" if n % 2 else "Water purification",
        funder="Test Fund",
        countries=countries,
        sectors=["energy"],
        themes=[],
        deadline=None if days is None else now + timedelta(days=days),
        status=status,
        is_active=status in ("open", "active", "forthcoming", "pipeline"),
        url=f"https://example.org/{TAG}/{n}",
        content_hash=hashlib.sha256(f"{TAG}{n}".encode()).hexdigest(),
        raw={},
    )


@pytest.fixture(scope="module")
def grant_ids(fleet_env: dict[str, str]) -> list[int]:
    url = fleet_env["DATABASE_URL"]

    async def seed() -> list[int]:
        engine = await migrated_engine(url)
        await engine.dispose()
        rows = [
            _grant(1, source="cordis", countries=["DE"], days=10),
            _grant(2, source="cordis", countries=["FR"], days=40),
            _grant(3, source="iati", countries=["KE", "DE"], days=None),
            _grant(4, source="gcf", countries=["DE"], days=5, status="closed"),
        ] + [_grant(10 + i, source="world_bank", countries=["BR"], days=20 + i) for i in range(7)]
        async with session_for(url) as db, db.begin():
            db.add_all(rows)
            await db.flush()
            await search.rebuild(db)
            return [r.id for r in rows]

    return asyncio.run(seed())


def test_search_finds_by_words_and_pages(api, grant_ids) -> None:
    first = api.get("/api/v1/grants", params={"q": WORD, "limit": 4}).json()
    assert first["total"] == 10 and not first["truncated"]  # the closed one is not active
    second = api.get("/api/v1/grants", params={"q": WORD, "limit": 4, "offset": 4}).json()
    third = api.get("/api/v1/grants", params={"q": WORD, "limit": 4, "offset": 8}).json()
    ids = [g["id"] for page in (first, second, third) for g in page["items"]]
    assert len(ids) == len(set(ids)) == 10 and set(ids) == set(grant_ids) - {grant_ids[3]}
    assert all(g["score"] is not None for g in first["items"])


def test_search_filters(api, grant_ids) -> None:
    def ids(**params) -> set[int]:
        body = api.get("/api/v1/grants", params={"q": WORD, **params}).json()
        return {g["id"] for g in body["items"]}

    g = grant_ids
    assert ids(source="cordis") == {g[0], g[1]}
    assert ids(country="de") == {g[0], g[2]}
    assert ids(country="DE", active_only="false") == {g[0], g[2], g[3]}
    assert ids(status="closed", active_only="false") == {g[3]}
    soon = (datetime.now(UTC) + timedelta(days=15)).isoformat()
    assert ids(deadline_before=soon) == {g[0]}
    assert ids(deadline_after=soon, source="cordis") == {g[1]}
    assert ids(q=f"{WORD} purification", source="cordis") == {g[1]}  # every word must match


def test_search_bad_input_is_422_naming_the_parameter(api) -> None:
    for params, name in [
        ({"q": ""}, "q"),
        ({"q": "x", "country": "Deutschland"}, "country"),
        ({"q": "x", "source": "nasa"}, "source"),
        ({"q": "x", "limit": 0}, "limit"),
    ]:
        response = api.get("/api/v1/grants", params=params)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", name]


def test_grant_detail(api, grant_ids) -> None:
    grant = api.get(f"/api/v1/grants/{grant_ids[1]}").json()
    assert grant["title"].endswith(" 2") and grant["description"] == "Water purification"
    assert api.get("/api/v1/grants/2147483647").status_code == 404
