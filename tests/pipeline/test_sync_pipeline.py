"""The pipeline in-process against the feed server, on SQLite and PostgreSQL (``database_url`` is parametrized).

Real HTTP to the recorded feeds, real databases; only the Celery shell is left out here
(``test_worker_pipeline`` runs the same through real sync workers).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from taskfleet_core import settings
from taskfleet_data import search
from taskfleet_data.models import Grant
from taskfleet_worker_sync import dedup, maintenance
from taskfleet_worker_sync.pipeline import sync_source

from tests.pipeline.conftest import SOURCES
from tests.pipeline.helpers import count_by_source, grant, grants, run, sync_state, with_session

#: pages each paged source spans on the feed server (rows capped at 20/25/20; CORDIS: two zips; GCF: one array)
EXPECTED_PAGES = {"world_bank": 3, "iati": 3, "eu_portal": 3, "cordis": 2, "gcf": 1}


def sync_all(full: bool = True) -> dict:
    return {s: run(sync_source(s, full=full)) for s in SOURCES}


def test_full_sync_counts_per_source_and_paging_reaches_the_last_page(pipeline_env, feeds, database_url):
    results = sync_all()
    expected = feeds.stats()["counts"]

    assert {s: r.status for s, r in results.items()} == dict.fromkeys(SOURCES, "ok")
    assert {s: r.inserted for s, r in results.items()} == expected
    assert count_by_source(database_url) == expected
    assert {s: r.pages for s, r in results.items()} == EXPECTED_PAGES
    # the last record of each paged feed arrived (the feed lists World Bank projects in order)
    assert grant(database_url, "world_bank", "P510055").title
    state = sync_state(database_url, "iati")
    assert (state.last_status, state.fetched, state.pages) == ("ok", expected["iati"], 3)
    assert state.watermark  # the newest last_updated_datetime seen


def test_second_sync_changes_nothing(pipeline_env, feeds, database_url):
    sync_all()
    before = {(g.source, g.external_id): (g.id, g.content_hash, g.updated_at) for g in grants(database_url)}

    again = sync_all(full=True)
    incremental = sync_all(full=False)

    for results in (again, incremental):
        assert all(r.inserted == 0 and r.updated == 0 and r.status == "ok" for r in results.values()), results
    assert again["gcf"].unchanged == feeds.stats()["counts"]["gcf"]
    # incremental runs fetch less: IATI and World Bank only what is past their watermark
    assert incremental["iati"].fetched < again["iati"].fetched
    after = {(g.source, g.external_id): (g.id, g.content_hash, g.updated_at) for g in grants(database_url)}
    assert after == before


def test_a_changed_record_updates_once(pipeline_env, feeds, database_url):
    run(sync_source("gcf", full=True))
    with_session(database_url, maintenance.generate_embeddings)
    assert grant(database_url, "gcf", "FP001").embedding is not None

    feeds.edit("gcf", "FP001", ProjectName="Wetland resilience in Datem del Marañón, Peru (revised)")
    first = run(sync_source("gcf", full=True))
    second = run(sync_source("gcf", full=True))

    assert (first.updated, first.inserted) == (1, 0)
    assert first.unchanged == first.fetched - 1
    assert (second.updated, second.inserted) == (0, 0)
    changed = grant(database_url, "gcf", "FP001")
    assert changed.title == "Wetland resilience in Datem del Marañón, Peru (revised)"
    assert changed.embedding is None  # its text changed: re-embedded by the next embeddings run


def test_a_source_returning_500s_is_retried_then_reported(pipeline_env, feeds, database_url):
    run(sync_source("gcf", full=True))
    feeds.fail("gcf", times=-1, status=500)
    before = feeds.stats()["requests"]["gcf"]

    failed = run(sync_source("gcf", full=True))
    others = {s: run(sync_source(s, full=True)) for s in SOURCES if s != "gcf"}

    assert failed.status == "failed" and failed.retryable
    assert "HTTP 500" in failed.error and "3 attempts" in failed.error
    assert feeds.stats()["requests"]["gcf"] - before == 3  # GRANT_HTTP_RETRIES=2: one try + two retries
    assert all(r.status == "ok" for r in others.values())
    state = sync_state(database_url, "gcf")
    assert state.last_status == "failed" and "HTTP 500" in state.last_error
    assert state.last_success_at is not None  # from the earlier good run; its grants are still there
    assert count_by_source(database_url)["gcf"] == feeds.stats()["counts"]["gcf"]


def test_a_transient_500_is_retried_and_the_sync_succeeds(pipeline_env, feeds, database_url):
    for source in ("world_bank", "eu_portal"):  # a GET and a multipart POST source
        feeds.fail(source, times=1, status=503)
        result = run(sync_source(source, full=True))
        assert result.status == "ok" and result.inserted == feeds.stats()["counts"][source]


def test_a_grant_whose_deadline_passed_is_marked_inactive(pipeline_env, feeds, database_url):
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT17:00:00.000+0200")
    feeds.edit("eu_portal", "HORIZON-CL4-2026-D1-01-01", **{"metadata.deadlineDate": [yesterday]})
    run(sync_source("eu_portal", full=True))

    lapsed = grant(database_url, "eu_portal", "HORIZON-CL4-2026-D1-01-01")
    assert lapsed.raw["metadata"]["status"] == ["31094502"]  # the portal still says Open
    assert (lapsed.is_active, lapsed.status) == (False, "closed")

    # a call that was open at sync time and whose deadline passes afterwards: the cleanup task's job
    still_open = grant(database_url, "eu_portal", "HORIZON-CL5-2026-D2-01-02")
    assert still_open.is_active and still_open.status == "open"

    async def backdate(session):
        past = datetime.now(UTC) - timedelta(hours=1)
        await session.execute(update(Grant).where(Grant.id == still_open.id).values(deadline=past))
        await session.commit()
        return await maintenance.cleanup_expired(session)

    result = with_session(database_url, backdate)
    assert result["deactivated"] == 1
    expired = grant(database_url, "eu_portal", "HORIZON-CL5-2026-D2-01-02")
    assert (expired.is_active, expired.status) == (False, "closed")
    assert with_session(database_url, maintenance.cleanup_expired)["deactivated"] == 0


def test_duplicates_across_sources_collapse_to_one_canonical_grant(pipeline_env, feeds, database_url):
    sync_all()
    first = with_session(database_url, dedup.deduplicate)
    second = with_session(database_url, dedup.deduplicate)

    assert first["duplicate_groups"] == 3 and first["newly_linked"] == 3
    assert first["similar_pairs"] == 1  # the "... Project" title variant: found by embedding similarity only
    assert second["newly_linked"] == 0 and second["duplicates"] == 3
    for (canon_source, canon_id), (dup_source, dup_id) in feeds.duplicates():
        canonical = grant(database_url, canon_source, canon_id)
        duplicate = grant(database_url, dup_source, dup_id)
        assert canonical.duplicate_of_id is None
        assert duplicate.duplicate_of_id == canonical.id
    # one source's records are never merged with each other
    linked = grants(database_url, Grant.duplicate_of_id.is_not(None))
    assert {g.source for g in linked} == {"iati"}


def test_search_finds_a_grant_by_a_word_of_its_description(pipeline_env, feeds, database_url):
    sync_all()
    with_session(database_url, dedup.deduplicate)
    indexed = with_session(database_url, maintenance.reindex_search)
    assert indexed["indexed"] == sum(feeds.stats()["counts"].values()) - 3  # duplicates are not indexed

    hits = with_session(database_url, lambda s: search.search(s, "supports smallholder"))
    assert "Climate-resilient livelihoods in northern Uganda" in [h.title for h in hits]
    # stemming: "restore" finds "restores degraded ecosystems"
    assert with_session(database_url, lambda s: search.search(s, "restore ecosystems"))
    assert with_session(database_url, lambda s: search.search(s, "xylophone")) == []


def test_embeddings_only_for_grants_missing_them(pipeline_env, feeds, database_url):
    run(sync_source("gcf", full=True))
    first = with_session(database_url, lambda s: maintenance.generate_embeddings(s, batch_size=10))
    second = with_session(database_url, maintenance.generate_embeddings)
    assert first["embedded"] == feeds.stats()["counts"]["gcf"] and second["embedded"] == 0
    assert all(len(g.embedding) == 384 * 4 and g.embedding_model == "hashing-384" for g in grants(database_url))


def test_a_run_cut_short_is_completed_by_the_next_run(pipeline_env, feeds, database_url):
    """A run stopped after its first page (as a killed task would be) leaves no watermark; the rerun completes."""
    partial = run(sync_source("iati", full=False, max_pages=1))
    assert partial.status == "ok" and not partial.complete and partial.inserted == 25
    assert sync_state(database_url, "iati").watermark is None  # not moved: the rest is still to be read

    rerun = run(sync_source("iati", full=False))
    assert rerun.complete and (rerun.inserted, rerun.unchanged) == (feeds.stats()["counts"]["iati"] - 25, 25)
    assert count_by_source(database_url) == {"iati": feeds.stats()["counts"]["iati"]}
    assert sync_state(database_url, "iati").watermark


def test_new_and_changed_grants_are_searchable_before_any_reindex(pipeline_env, feeds, database_url):
    run(sync_source("gcf", full=True))
    assert with_session(database_url, lambda s: search.search(s, "wetlands datem"))

    feeds.edit("gcf", "FP001", ProjectName="Peatland carbon in Loreto, Peru")
    run(sync_source("gcf", full=True))
    titles = [h.title for h in with_session(database_url, lambda s: search.search(s, "peatland loreto"))]
    assert titles == ["Peatland carbon in Loreto, Peru"]
    assert with_session(database_url, lambda s: search.search(s, "wetlands datem")) == []


def test_iati_without_a_subscription_key_fails_clearly(pipeline_env, feeds, database_url, monkeypatch):
    monkeypatch.setenv("IATI_API_KEY", "")
    settings.reload()
    result = run(sync_source("iati", full=True))
    assert result.status == "failed" and not result.retryable and "IATI_API_KEY" in result.error
    assert feeds.stats()["requests"].get("iati", 0) == 0


def test_a_sync_reports_progress_page_by_page(pipeline_env, feeds, database_url):
    """The callback the tasks wire to ``update_state`` (PROGRESS) is called once a page."""
    reports = []
    run(sync_source("world_bank", full=True, progress=lambda done, total, message: reports.append((done, message))))
    assert [done for done, _ in reports] == [1, 2, 3]
    assert reports[-1][1] == f"world_bank: page 3, {feeds.stats()['counts']['world_bank']} records"
