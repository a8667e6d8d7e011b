"""Matching with real workers on SQLite and PostgreSQL: expected ranking, replace not duplicate, no overlap."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select
from taskfleet_api.producer import celery_app
from taskfleet_core.tasks.async_bridge import run_async
from taskfleet_data.accounts import MatchResult
from taskfleet_data.db import session_for

from tests.integration.helpers import wait_for_job
from tests.matching.fixtures import World, seed_world
from tests.support.processes import start_worker


@pytest.fixture(scope="module")
def world(fleet) -> World:
    # one process, one message at a time: what a fan-out queues lands behind what is already waiting
    fleet.workers.started["matching"] = start_worker("matching", fleet.env, fleet.workers.log_dir, "--concurrency", "1")
    return run_async(lambda: seed_world(fleet.database_url, fleet.backend))


def match_rows(url: str, company_id: int) -> list[tuple[int, int, str | None]]:
    async def read():
        async with session_for(url) as session:
            rows = await session.execute(
                select(MatchResult.grant_id, MatchResult.rank, MatchResult.job_id)
                .where(MatchResult.company_id == company_id)
                .order_by(MatchResult.rank)
            )
            return [tuple(r) for r in rows]

    return run_async(read)


def test_company_gets_the_grants_a_reader_expects_first(fleet, world) -> None:
    nordwind = world.companies["nordwind"]
    job = wait_for_job(fleet.api, fleet.submit("matching.calculate_company_matches", company_id=nordwind))
    assert job["state"] == "SUCCESS", job

    body = fleet.api.get(f"/api/v1/companies/{nordwind}/matches").json()
    ranked = [m["grant_id"] for m in body["matches"]]
    g = world.grants
    assert ranked[:2] == [g["wind"], g["storage"]]
    assert set(ranked) == {g["wind"], g["storage"], g["kenya"], g["buses"]}  # no duplicate, expired, closed
    best = body["matches"][0]
    assert "Open to applicants from DE" in best["reasons"] and "Sector match: energy" in best["reasons"]
    assert best["reasons"][0].startswith(("Strong", "Moderate"))
    assert [m["rank"] for m in body["matches"]] == [1, 2, 3, 4]
    assert body["matches"][0]["score"] > body["matches"][1]["score"] > body["matches"][2]["score"]

    shamba = world.companies["shamba"]
    job = wait_for_job(fleet.api, fleet.submit("matching.calculate_company_matches", company_id=shamba, top_n=2))
    assert job["state"] == "SUCCESS", job
    assert [m["grant_id"] for m in fleet.api.get(f"/api/v1/companies/{shamba}/matches").json()["matches"]][0] == g[
        "kenya"
    ]


def test_rerunning_replaces_never_duplicates(fleet, world) -> None:
    nordwind = world.companies["nordwind"]
    jobs = [fleet.submit("matching.calculate_company_matches", company_id=nordwind) for _ in range(3)]
    for job_id in jobs:
        assert wait_for_job(fleet.api, job_id)["state"] == "SUCCESS"
    rows = match_rows(fleet.database_url, nordwind)
    assert len(rows) == 4 and len({grant for grant, _, _ in rows}) == 4
    assert [rank for _, rank, _ in rows] == [1, 2, 3, 4]
    assert len({job for _, _, job in rows}) == 1  # one calculation's results, not a mix


def test_unknown_company_fails_permanently(fleet, world) -> None:
    job = wait_for_job(fleet.api, fleet.submit("matching.calculate_company_matches", company_id=999_999))
    assert job["state"] == "FAILURE" and job["retries"] == 0
    assert "no company with id 999999" in job["error"]["message"]


def test_full_refresh_fans_out_and_a_second_overlapping_one_skips(fleet, world) -> None:
    # Both refreshes are queued while the worker does not consume; it then runs them one at a
    # time, and the first one's chunks queue up behind the second: the two surely overlap.
    control = celery_app().control
    assert control.cancel_consumer("matching", reply=True, limit=1, timeout=5)
    first = fleet.submit("matching.refresh_all_matches", chunk_size=1)
    second = fleet.submit("matching.refresh_all_matches", chunk_size=1)
    assert control.add_consumer("matching", reply=True, limit=1, timeout=5)
    if True:
        # which one runs first is the broker's business (a message held at cancel time is requeued)
        one, two = sorted(
            (wait_for_job(fleet.api, job) for job in (first, second)), key=lambda j: j["result"]["skipped"]
        )
        assert one["state"] == two["state"] == "SUCCESS"
        assert one["result"]["skipped"] is False and one["result"]["chunks"] == 2
        assert two["result"]["skipped"] is True
        assert "another run holds lock 'matching.refresh:all'" in two["result"]["reason"]

        callback = wait_for_job_result(fleet, one["result"]["callback_id"])
        assert callback["released"] is True and callback["companies"] == 2
        assert fleet.redis.exists("taskfleet:lock:matching.refresh:all") == 0
        for company in world.companies.values():
            assert match_rows(fleet.database_url, company)

        third = wait_for_job(fleet.api, fleet.submit("matching.refresh_all_matches"))
        assert third["result"]["skipped"] is False  # the lock is free again once the fan-out ended
        active = wait_for_job(fleet.api, fleet.submit("matching.refresh_all_matches", active_within_days=7))
        assert active["result"]["companies"] == 2


def wait_for_job_result(fleet, task_id: str, timeout: float = 30) -> dict:
    backend = celery_app().backend  # polled, not subscribed: nothing left listening after the test
    deadline = time.monotonic() + timeout
    while (meta := backend.get_task_meta(task_id))["status"] not in {"SUCCESS", "FAILURE"}:
        assert time.monotonic() < deadline, f"callback {task_id} not done: {meta}"
        time.sleep(0.1)
    assert meta["status"] == "SUCCESS", meta
    return meta["result"]


def test_stored_rows_count_matches_the_api(fleet, world) -> None:
    async def count():
        async with session_for(fleet.database_url) as session:
            return await session.scalar(select(func.count()).select_from(MatchResult))

    assert run_async(count) == 4 + 4  # both companies, top 4 each after the full refresh (top_n 50)
