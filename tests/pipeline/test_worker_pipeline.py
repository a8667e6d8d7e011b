"""The pipeline through real sync workers (prefork subprocesses) on SQLite and PostgreSQL.

The sync queue's fleet-wide limit (10 tasks/minute) stays on. A ``sync_all_grants`` run is
7 tasks (the orchestrator, 5 sources, the finishing step), so each test sends at most 10;
``fresh_sync_window`` empties the limiter's window between tests, since each test is its
own fleet and should not inherit the previous test's minute, nor sync messages other tests
left waiting (Beat tests send the scheduled syncs to a queue nobody consumes there).
"""

from __future__ import annotations

import pytest
from taskfleet_core.broker.keys import RATE_KEY
from taskfleet_core.tasks.app import create_app
from taskfleet_core.tasks.queues import QUEUES
from taskfleet_data.models import Grant

from tests.pipeline.conftest import SOURCES
from tests.pipeline.helpers import count_by_source, grant, grants, sync_state


@pytest.fixture
def fresh_sync_window(redis_client) -> None:
    redis_client.delete(RATE_KEY.format(name="sync"), *QUEUES["sync"].waiting_lists())


@pytest.fixture
def producer():
    return create_app("pipeline-test")


def test_sync_all_grants_chord_reports_a_failing_source_and_finishes_the_others(
    pipeline_env, feeds, database_url, worker_factory, fresh_sync_window, producer
):
    feeds.fail("gcf", times=-1, status=500)
    worker_factory("sync", env=pipeline_env)

    summary = producer.send_task("pipeline.sync_all_grants", kwargs={"full": True}).get(timeout=90)

    counts = feeds.stats()["counts"]
    assert summary["failed"] == ["gcf"]
    assert summary["succeeded"] == sorted(s for s in SOURCES if s != "gcf")
    assert "HTTP 500" in summary["sources"]["gcf"]["error"]
    for source in summary["succeeded"]:
        assert summary["sources"][source]["inserted"] == counts[source]
    stored = count_by_source(database_url)
    assert stored == {s: counts[s] for s in SOURCES if s != "gcf"}
    assert sync_state(database_url, "gcf").last_status == "failed"
    # the finishing steps ran after the chord: dedup (World Bank / IATI pair; GCF is missing), embeddings, index
    assert summary["deduplicate"]["duplicate_groups"] == 1
    assert summary["embeddings"]["embedded"] == sum(stored.values())
    assert summary["search"]["indexed"] == sum(stored.values()) - 1
    assert all(g.embedding is not None for g in grants(database_url))

    # the scheduled maintenance tasks on the same worker
    cleaned = producer.send_task("scheduled.cleanup_expired_grants").get(timeout=30)
    reindexed = producer.send_task("maintenance.reindex_search").get(timeout=30)
    assert cleaned == {"deactivated": 0}  # expiry is also applied at sync time
    assert reindexed["indexed"] == summary["search"]["indexed"]


def test_scheduled_sync_then_single_source_tasks(
    pipeline_env, feeds, database_url, worker_factory, fresh_sync_window, producer
):
    worker_factory("sync", env=pipeline_env)

    daily = producer.send_task("scheduled.daily_grant_sync").get(timeout=90)
    assert daily["failed"] == [] and daily["full"] is False
    assert daily["deduplicate"]["duplicate_groups"] == 3

    feeds.edit("world_bank", "P508961", pdo="Improve access to green finance for MSMEs in Nepal")
    again = producer.send_task("pipeline.sync_world_bank_projects", kwargs={"full": True}).get(timeout=30)
    assert (again["inserted"], again["updated"]) == (0, 1)
    assert grant(database_url, "world_bank", "P508961").embedding is None

    embedded = producer.send_task("pipeline.generate_grant_embeddings_task", kwargs={"batch_size": 8}).get(timeout=30)
    deduped = producer.send_task("pipeline.deduplicate_grants_task").get(timeout=30)
    assert embedded["embedded"] == 1
    assert deduped["newly_linked"] == 0 and deduped["duplicates"] == 3
    assert len(grants(database_url, Grant.duplicate_of_id.is_not(None))) == 3
