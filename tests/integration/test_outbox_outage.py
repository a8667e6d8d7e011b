"""The broker away while the product writes (issue 16): 200 companies are created while Valkey is down; once it
is back, their 200 matching jobs run, each once, and each company's matches are stored by its own job."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from taskfleet_data.accounts import MatchResult
from taskfleet_data.db import session_for

from tests.integration.outbox_fleet import BACKENDS, OutboxFleet, start_fleet, succeeded, wait_until


@pytest.fixture(scope="module", params=BACKENDS)
def fleet(
    request: pytest.FixtureRequest, fleet_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OutboxFleet]:
    yield from start_fleet(request, fleet_env, tmp_path_factory)


def test_broker_down_while_200_companies_are_created_then_200_matching_jobs_run_once(fleet) -> None:
    assert fleet.api is not None
    worker = fleet.workers.ensure("matching")
    fleet.valkey.stop()
    try:
        with fleet.running(fleet.relay()):  # the API's relay: failing and retrying while the broker is away
            companies = {}
            for i in range(200):
                response = fleet.api.post("/api/v1/companies", json={"name": f"Down {i}", "sectors": ["energy"]})
                assert response.status_code == 201, response.text
                companies[response.json()["matching_job_id"]] = response.json()["id"]
            assert fleet.waiting() >= 200  # committed, waiting for the broker
            fleet.valkey.start()
            wait_until(lambda: fleet.waiting() == 0, 30, "the backlog published")
    finally:
        if fleet.valkey.process is None or fleet.valkey.process.poll() is not None:
            fleet.valkey.start()
    ran = wait_until(
        lambda: (c := succeeded(worker.log(), "matching.calculate_company_matches")) and set(companies) <= set(c) and c,
        90,
        "200 matching jobs done",
    )
    assert all(ran[job_id] == 1 for job_id in companies), "a matching job ran twice"

    async def stored_by() -> dict[int, set[str | None]]:
        async with session_for(fleet.database_url) as session:
            rows = await session.execute(
                select(MatchResult.company_id, MatchResult.job_id).where(MatchResult.company_id.in_(companies.values()))
            )
            found: dict[int, set[str | None]] = {}
            for company_id, job_id in rows:
                found.setdefault(company_id, set()).add(job_id)
            return found

    by_company = asyncio.run(stored_by())
    assert {c: {j} for j, c in companies.items()} == by_company  # each company's matches, by its own job
