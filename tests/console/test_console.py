"""The operator console in a real headless Chromium (Debian's ``chromium``, driven by Playwright; no browser
download) against real processes: the uvicorn API, a prefork default worker, Beat and valkey-server (the
reliability harness's Fleet).

``CONSOLE_SCREENSHOTS=docs/img uv run pytest tests/console`` also writes the screenshots docs/console.md shows.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from taskfleet_core.reliability import dlq
from taskfleet_core.tasks.errors import PermanentError

from tests.console.conftest import READ_TOKEN
from tests.reliability.harness import TOKEN, Fleet

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


def url(fleet: Fleet, path: str = "/console/") -> str:
    return f"http://127.0.0.1:{fleet.api_port}{path}"


def signed_in(browser: Browser, fleet: Fleet, token: str = TOKEN) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(15_000)
    page.goto(url(fleet))  # not signed in: the login form
    expect(page).to_have_url(url(fleet, "/console/login"))
    page.fill("#token", token)
    page.click("#sign-in")
    expect(page).to_have_url(url(fleet))
    return page


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"), full_page=True)


def dead_letter(fleet: Fleet, steps: int = 1) -> dlq.DeadLetter:
    """A canary dead-lettered as ``FleetTask.on_failure`` records it (its replay, a fresh canary, succeeds)."""
    return dlq.DeadLetterQueue(fleet.valkey).add_failure(
        queue="default",
        task="maintenance.canary",
        job_id=uuid.uuid4().hex,
        args=[],
        kwargs={"steps": steps},
        exc=PermanentError("upstream said no"),
        reason=dlq.PERMANENT,
    )


@pytest.mark.usefixtures("no_workers")
def test_sign_in_and_watch_a_queue_fill(fleet: Fleet, browser: Browser) -> None:
    page = browser.new_context().new_page()
    page.goto(url(fleet, "/console/login"))
    page.fill("#token", "not-a-token")
    page.click("#sign-in")
    expect(page.locator("#login-error")).to_be_visible()
    page.close()

    page = signed_in(browser, fleet)
    response = page.goto(url(fleet))
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    cookie = next(c for c in page.context.cookies() if c["name"] == "taskfleet_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    waiting = page.locator("#queue-default .waiting")
    expect(waiting).to_have_text("0", timeout=10_000)
    for _ in range(8):  # no default worker yet: they wait
        assert fleet.submit("maintenance.canary", kwargs={"steps": 1})
    expect(waiting).to_have_text("8", timeout=10_000)  # htmx refreshes the table every 2 s
    assert page.locator("#queue-default svg.spark polyline").first.get_attribute("points")
    shot(page, "queues")


@pytest.mark.usefixtures("default_worker")
def test_a_canary_progress_bar_advances(fleet: Fleet, browser: Browser) -> None:
    page = signed_in(browser, fleet)
    expect(page.locator("#queue-default .waiting")).to_have_text("0", timeout=15_000)  # the worker drained them
    job = fleet.submit(
        "maintenance.canary", kwargs={"steps": 5, "sleep_seconds": 6, "payload": {"note": "<script>x()</script>"}}
    )
    assert job
    page.goto(url(fleet, f"/console/jobs/{job}"))
    bar = page.locator("#job-progress")
    seen: list[int] = []  # the bar's values while the job reports "step n of 5"
    deadline = time.monotonic() + 20
    while page.locator("#job-state").inner_text() != "SUCCESS" and time.monotonic() < deadline:
        if bar.count() and bar.get_attribute("max") == "5":
            value = int(bar.get_attribute("value") or 0)
            if not seen or value != seen[-1]:
                seen.append(value)
                if len(seen) == 3:
                    shot(page, "job")
        time.sleep(0.2)
    expect(page.locator("#job-state")).to_have_text("SUCCESS")
    assert bar.get_attribute("value") == bar.get_attribute("max")  # done: a full bar
    assert seen == sorted(seen) and len(seen) >= 3, seen  # it moved step by step (1.2 s each), never back
    # arguments are shown escaped: the payload is text, never markup
    assert "<script>x()</script>" in page.locator("#job").inner_text()
    assert page.locator("script").count() == 1  # only htmx, from /console/static

    page.goto(url(fleet, "/console/jobs?task=maintenance.canary"))
    expect(page.locator("#jobs")).to_contain_text(job)
    shot(page, "jobs")


@pytest.mark.usefixtures("default_worker")
def test_replay_a_dead_letter_and_see_it_succeed(fleet: Fleet, browser: Browser) -> None:
    entry = dead_letter(fleet)
    page = signed_in(browser, fleet)
    page.goto(url(fleet, "/console/dlq"))
    row = page.locator(f"#dl-{entry.id}")
    expect(row).to_contain_text("upstream said no")
    shot(page, "dlq")
    row.locator("a.replay").click()
    expect(page.locator("h1")).to_contain_text("Replay dead letter")  # the confirmation step: nothing done yet
    assert fleet.valkey.exists(f"taskfleet:dlq:entry:{entry.id}")
    page.click("#confirm")
    expect(page).to_have_url(re.compile(r"/console/jobs/"))
    expect(page.locator("#job-state")).to_have_text("SUCCESS", timeout=20_000)
    new_job = page.url.rsplit("/", 1)[-1]
    assert new_job == dlq.replay_job_id(entry)
    assert not fleet.valkey.exists(f"taskfleet:dlq:entry:{entry.id}")
    assert f"console replay of dead letter {entry.id} as job {new_job}" in fleet.api_proc.log()  # type: ignore[union-attr]


def test_read_token_sees_no_replay_and_forged_posts_are_refused(fleet: Fleet, browser: Browser) -> None:
    entry = dead_letter(fleet)
    reader = signed_in(browser, fleet, READ_TOKEN)
    reader.goto(url(fleet, "/console/dlq"))
    expect(reader.locator("#dlq-admin-only")).to_be_visible()
    assert reader.locator(".replay, .purge").count() == 0
    shot(reader, "dlq-read-only")
    csrf = reader.locator("header input[name=csrf]").get_attribute("value")
    assert reader.goto(url(fleet, f"/console/dlq/{entry.id}/replay")).status == 403  # type: ignore[union-attr]
    refused = reader.request.post(url(fleet, f"/console/dlq/{entry.id}/replay"), form={"csrf": csrf or ""})
    assert refused.status == 403  # a read session may not act, even with its own CSRF token

    admin = signed_in(browser, fleet)
    for form in ({}, {"csrf": "forged"}, {"csrf": csrf or ""}):  # none, invalid, another session's
        forged = admin.request.post(url(fleet, f"/console/dlq/{entry.id}/purge"), form=form)
        assert forged.status == 403, form
    assert fleet.valkey.exists(f"taskfleet:dlq:entry:{entry.id}")  # nothing was purged
    admin.goto(url(fleet, f"/console/dlq/{entry.id}"))  # inspect, then purge through the confirmation page
    expect(admin.locator("main")).to_contain_text("PermanentError")
    admin.click("a.purge")
    admin.click("#confirm")
    expect(admin).to_have_url(url(fleet, "/console/dlq"))
    assert not fleet.valkey.exists(f"taskfleet:dlq:entry:{entry.id}")
    assert f"console purge of dead letter {entry.id} (purged=1)" in fleet.api_proc.log()  # type: ignore[union-attr]
    login = admin.request.post(url(fleet, "/console/login"), form={"token": TOKEN})  # login without its CSRF value
    assert login.status == 403

    reader.goto(url(fleet))
    sid = next(c["value"] for c in reader.context.cookies() if c["name"] == "taskfleet_console")
    reader.click("header button")  # sign out (a POST with the session's CSRF token): the session is gone
    expect(reader).to_have_url(url(fleet, "/console/login"))
    poll = reader.request.get(url(fleet, "/console/fragments/queues"), headers={"HX-Request": "true"})
    assert poll.status == 401 and poll.headers["hx-redirect"] == "/console/login"  # htmx reloads to the login
    replayed = httpx.get(url(fleet), cookies={"taskfleet_console": sid}, follow_redirects=False)
    assert replayed.status_code == 303  # the old session id is dead on the server, not only forgotten by the browser


@pytest.mark.usefixtures("default_worker")
def test_beat_schedule_and_workers(fleet: Fleet, browser: Browser) -> None:
    fleet.start_beat(interval=1.0)
    page = signed_in(browser, fleet)
    deadline = time.monotonic() + 20
    while "Leader:" not in page.locator("main").inner_text():
        assert time.monotonic() < deadline, "no Beat leader shown"
        time.sleep(0.5)
        page.goto(url(fleet, "/console/beat"))
    expect(page.locator("#beat-daily-grant-sync")).to_contain_text("scheduled.daily_grant_sync")
    while "(sent)" not in page.locator("#beat-beat-canary").inner_text():  # the 1 s canary: sent within seconds
        assert time.monotonic() < deadline + 10, "the Beat canary was never shown as sent"
        time.sleep(0.5)
        page.reload()
    shot(page, "beat")
    page.goto(url(fleet, "/console/workers"))
    expect(page.locator("table.workers")).to_contain_text("default")
    expect(page.locator("table.workers tr.alive").first).to_be_visible()
    shot(page, "workers")
