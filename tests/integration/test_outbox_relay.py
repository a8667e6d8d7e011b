"""Transactional enqueue (issue 16) on SQLite and PostgreSQL, real Valkey, real workers, the real API.

A job is published if and only if the transaction that asked for it commits: a rollback publishes nothing, a
committed job reads PENDING ("not yet published") until the relay publishes it under the id given at enqueue;
two relays racing never publish a row twice; a relay that dies between publish and mark causes one duplicate
delivery of the same job id, and one effect (one email). The broker outage is in test_outbox_outage.py.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery.result import AsyncResult
from prometheus_client import REGISTRY
from pydantic import ValidationError
from taskfleet_api.outbox import NOT_YET_PUBLISHED, FleetPublisher
from taskfleet_api.producer import celery_app, job_record
from taskfleet_data.db import session_for
from taskfleet_data.outbox import Pending, UnknownTask, enqueue_in

from tests.integration.outbox_fleet import (
    BACKENDS,
    OutboxFleet,
    api_client,
    queued_ids,
    start_fleet,
    succeeded,
    wait_until,
)
from tests.support.environment import applied_env
from tests.support.smtp_server import SmtpServer

# -- enqueue: validation, rollback, commit ------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def fleet(
    request: pytest.FixtureRequest, fleet_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OutboxFleet]:
    yield from start_fleet(request, fleet_env, tmp_path_factory)


def test_arguments_are_checked_against_the_contract_before_anything_is_written(fleet) -> None:
    async def enqueue_bad() -> list[Any]:
        async with session_for(fleet.database_url) as session:
            with pytest.raises(ValidationError) as invalid:
                await enqueue_in(session, "matching.calculate_company_matches", kwargs={"company_id": "7"})
            with pytest.raises(UnknownTask):
                await enqueue_in(session, "matching.no_such_task")
            await session.commit()
            return invalid.value.errors()

    errors = asyncio.run(enqueue_bad())
    assert [e["loc"] for e in errors] == [("company_id",)]  # the same error the API turns into a 422
    assert fleet.waiting() == 0


def test_rollback_publishes_nothing_and_commit_publishes_once(fleet) -> None:
    async def enqueue(commit: bool) -> str:
        async with session_for(fleet.database_url) as session:
            job_id = await enqueue_in(session, "maintenance.canary", kwargs={"payload": {"commit": commit}})
            await (session.commit() if commit else session.rollback())
            return job_id

    with fleet.running(fleet.relay()):
        rolled_back = asyncio.run(enqueue(False))
        committed = asyncio.run(enqueue(True))
        wait_until(lambda: job_record(committed), 10, "the committed job published")
    assert fleet.rows(rolled_back) == []
    assert job_record(rolled_back) is None
    assert fleet.api is not None and fleet.api.get(f"/api/v1/jobs/{rolled_back}").status_code == 404
    published = queued_ids(fleet, "default")
    assert published[committed] == 1 and rolled_back not in published
    (row,) = fleet.rows(committed)
    assert row.sent_at is not None and row.claimed_by is None


def test_a_job_in_the_outbox_reads_pending_then_published(fleet) -> None:
    assert fleet.api is not None
    created = fleet.api.post("/api/v1/companies", json={"name": "Outbox GmbH", "country": "DE", "sectors": ["energy"]})
    assert created.status_code == 201, created.text
    job_id = created.json()["matching_job_id"]
    waiting = fleet.api.get(f"/api/v1/jobs/{job_id}")
    assert waiting.status_code == 200, waiting.text
    body = waiting.json()
    assert body["state"] == "PENDING" and body["progress"] == {"message": NOT_YET_PUBLISHED}
    assert body["task"] == "matching.calculate_company_matches" and body["queue"] == "matching"

    relay = fleet.relay()

    async def one_pass() -> tuple[int, bool]:
        try:
            await relay.refresh_gauges()
            assert REGISTRY.get_sample_value("taskfleet_outbox_backlog", {"queue_name": "matching"}) >= 1
            return await relay.pass_once()
        finally:
            await relay.close()

    sent, failed = asyncio.run(one_pass())
    assert sent >= 1 and not failed
    published = fleet.api.get(f"/api/v1/jobs/{job_id}").json()
    assert published["id"] == job_id and published["progress"] != {"message": NOT_YET_PUBLISHED}
    assert job_record(job_id) is not None


def test_sent_rows_are_pruned(fleet) -> None:
    relay = fleet.relay(outbox_retention_seconds=0)

    async def enqueue_publish_prune() -> tuple[str, int]:
        try:
            async with session_for(fleet.database_url) as session:
                job_id = await enqueue_in(session, "maintenance.canary")
                await session.commit()
            while (await relay.pass_once())[0]:
                pass
            return job_id, await relay.prune()
        finally:
            await relay.close()

    job_id, pruned = asyncio.run(enqueue_publish_prune())
    assert pruned >= 1 and fleet.rows(job_id) == []
    assert job_record(job_id) is not None  # pruning forgets the row, not the job


# -- relays racing, a relay dying ---------------------------------------------------------------------------


class CountingPublisher:
    """The fleet's publisher, counting what goes through it (per job id)."""

    def __init__(self) -> None:
        self.inner = FleetPublisher()
        self.sent: Counter[str] = Counter()
        self.lock = threading.Lock()

    @contextmanager
    def connect(self) -> Iterator[Callable[[Pending], None]]:
        with self.inner.connect() as send:

            def counted(message: Pending) -> None:
                send(message)
                with self.lock:
                    self.sent[message.job_id] += 1

            yield counted


def test_two_relays_racing_never_publish_a_row_twice(fleet) -> None:
    async def enqueue_many(n: int) -> list[str]:
        async with session_for(fleet.database_url) as session:
            ids = [await enqueue_in(session, "maintenance.canary", kwargs={"steps": 1}) for _ in range(n)]
            await session.commit()
            return ids

    publishers = [CountingPublisher(), CountingPublisher()]
    relays = [fleet.relay(p, outbox_batch_size=5, outbox_poll_seconds=0.05) for p in publishers]
    with fleet.running(*relays):
        ids = [job_id for _ in range(6) for job_id in asyncio.run(enqueue_many(50))]
        wait_until(lambda: all(r.sent_at for r in fleet.rows(*ids)), 30, "every row sent")
    total = publishers[0].sent + publishers[1].sent
    assert set(total) == set(ids) and set(total.values()) == {1}, "a row published twice"
    assert all(p.sent for p in publishers), "both relays took rows: they did race"
    on_the_broker = queued_ids(fleet, "default")
    assert all(on_the_broker[job_id] == 1 for job_id in ids)


class RelayKilled(BaseException):
    """The relay's process ends right after the publish: nothing after it runs (no mark, no release)."""


class DiesAfterPublishing(FleetPublisher):
    @contextmanager
    def connect(self) -> Iterator[Callable[[Pending], None]]:
        with super().connect() as send:

            def send_then_die(message: Pending) -> None:
                send(message)
                raise RelayKilled

            yield send_then_die


def test_a_relay_killed_between_publish_and_mark_causes_one_effect(fleet, smtp_server: SmtpServer) -> None:
    worker = fleet.workers.ensure("email")
    address = f"outbox-{uuid.uuid4().hex[:8]}@example.test"
    kwargs = {"to": [address], "subject": "Once", "text": "one effect, whatever the relay did"}
    lease = 2.0
    doomed = fleet.relay(DiesAfterPublishing(), outbox_lease_seconds=lease)
    survivor = fleet.relay(outbox_lease_seconds=lease)

    async def scenario() -> str:
        async with session_for(fleet.database_url) as session:
            job_id = await enqueue_in(session, "email.send_email", kwargs=kwargs)
            await session.commit()
        try:
            with pytest.raises(RelayKilled):
                await doomed.pass_once()
        finally:
            await doomed.close()
        try:
            assert await survivor.pass_once() == (0, False)  # the dead relay's lease still holds the row
            await asyncio.sleep(lease)
            assert await survivor.pass_once() == (1, False)  # lease over: published again, same job id
        finally:
            await survivor.close()
        return job_id

    job_id = asyncio.run(scenario())
    wait_until(lambda: succeeded(worker.log(), "email.send_email")[job_id] == 2, 30, "both deliveries ran")
    assert len(smtp_server.handler.to(address)) == 1
    result: AsyncResult[Any] = AsyncResult(job_id, app=celery_app())
    assert result.state == "SUCCESS"


def test_the_api_runs_a_relay_of_its_own(fleet) -> None:
    with applied_env({"OUTBOX_RELAY_ENABLED": "true"}), api_client() as api:
        created = api.post("/api/v1/companies", json={"name": "Relayed Ltd"}).json()
        record = wait_until(lambda: job_record(created["matching_job_id"]), 5, "published by the API's relay")
    assert record["task"] == "matching.calculate_company_matches"


def test_a_user_write_asks_for_its_confirmation_email_in_the_same_transaction(fleet) -> None:
    assert fleet.api is not None
    company = fleet.api.post("/api/v1/companies", json={"name": "Mail Ltd"}).json()
    email = f"alerts-{uuid.uuid4().hex[:8]}@example.test"
    user = {"email": email, "company_id": company["id"], "alert_windows_days": [7, 1]}
    created = fleet.api.post("/api/v1/users", json=user)
    assert created.status_code == 201, created.text
    (row,) = fleet.rows(created.json()["welcome_job_id"])
    assert row.task == "email.send_email" and row.kwargs["to"] == [email]
    assert "7, 1 days before the deadline" in row.kwargs["text"] and "Mail Ltd" in row.kwargs["text"]

    again = fleet.api.post("/api/v1/users", json=user)  # the same email: 409, and its email rolled back with it
    assert again.status_code == 409
    quiet = fleet.api.post("/api/v1/users", json={**user, "email": "q" + email, "notify_deadlines": False})
    assert quiet.status_code == 201 and quiet.json()["welcome_job_id"] is None
    assert fleet.waiting_for("email.send_email", email) == 1
