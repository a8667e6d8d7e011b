"""The walk-throughs of README ("Try it") and docs/matching.md, run as written against `make up`'s stack.

Its ``sh`` blocks run in order under ``bash -e`` with the stack's URL and token in the environment the
walk-through reads (``TASKFLEET_API_URL``, ``TASKFLEET_API_TOKEN``), from a directory whose ``var`` is the
stack's. The test fails when a step fails, when the deadline check reports nothing due, or when no
deadline mail lands in ``var/mail/new/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest

from tests.local_stack.test_local_stack import ROOT, Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PROGRAMS = ("valkey", "api", "smtp-sink", "feeds", "worker-sync", "worker-matching", "worker-email")


def sh_blocks(doc: Path, section: str) -> list[str]:
    text = doc.read_text()
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    return re.findall(r"```sh\n(.*?)```", text[start : end if end != -1 else None], re.S)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr("tests.local_stack.test_local_stack.PROGRAMS", PROGRAMS)
    stack = Stack(tmp_path_factory.mktemp("stack") / "var")
    stack.env["TASKFLEET_PROGRAMS"] = ",".join(PROGRAMS)
    stack.start()
    try:
        stack.wait("the stack", stack.all_running, timeout=180)
        api = f"http://127.0.0.1:{stack.ports['api']}"
        stack.wait("the API", lambda: httpx.get(f"{api}/readyz", timeout=2).status_code == 200)
        yield stack
    finally:
        stack.cleanup([])  # SIGTERM to the stack (its orderly stop), then whatever is left of its session
        monkeypatch.undo()


def run_blocks(stack: Stack, blocks: list[str]) -> str:
    """The blocks under ``bash -euo pipefail`` from the directory holding the stack's ``var``; their output."""
    env = {
        **stack.env,
        "TASKFLEET_API_URL": f"http://127.0.0.1:{stack.ports['api']}",
        "TASKFLEET_API_TOKEN": stack.env["API_TOKENS"],
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "UV_PROJECT": str(ROOT),  # `uv run` outside the repository uses this workspace
        "UV_NO_SYNC": "1",  # ... as installed: the test never changes the environment
    }
    script = "set -euo pipefail\n" + "\n".join(blocks)
    done = subprocess.run(
        ["bash", "-c", script], cwd=stack.var.parent, env=env, capture_output=True, text=True, timeout=420
    )
    (stack.var.parent / "walkthrough.out").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:], stack.describe("walk-through failed"))
    return done.stdout


def documents(output: str) -> list[dict]:
    """The jobs the CLI printed (indented JSON objects), in order."""
    decoder = json.JSONDecoder()
    found = [decoder.raw_decode(output, m.start())[0] for m in re.finditer(r'\{\n  "', output)]
    return [d for d in found if isinstance(d, dict)]


def mails(stack: Stack, subject: str, at_least: int) -> list:
    mailbox = stack.var / "mail" / "new"
    deadline = time.monotonic() + 60
    while True:
        found = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in mailbox.glob("*")]
        matching = [m for m in found if str(m["Subject"]).startswith(subject)]
        if len(matching) >= at_least or time.monotonic() > deadline:
            return matching
        time.sleep(0.5)


def test_readme_try_it_sends_both_mails(stack: Stack) -> None:
    [block] = sh_blocks(ROOT / "README.md", "### Try it")
    output = run_blocks(stack, [block])
    submitted = json.loads(output[: output.index("}") + 1])
    assert submitted["task"] == "email.send_email" and submitted["status_url"].endswith(submitted["id"])
    job = next(d for d in documents(output) if d.get("state"))
    assert job["state"] == "SUCCESS" and job["result"]["accepted"] == ["you@example.com"]
    page = next(d for d in documents(output) if "items" in d)
    assert {submitted["id"], job["id"]} <= {j["id"] for j in page["items"]}
    assert mails(stack, "Hello from Taskfleet", 1) and mails(stack, "Hello again", 1)


def test_matching_walkthrough_sends_a_deadline_mail(stack: Stack) -> None:
    blocks = sh_blocks(ROOT / "docs" / "matching.md", "## Walk-through against the local stack")
    assert len(blocks) == 2, "the walk-through's shell blocks"
    output = run_blocks(stack, blocks)

    checks = [d for d in documents(output) if d.get("task") == "email.check_deadline_notifications"]
    first, second = checks
    assert first["state"] == "SUCCESS" and first["result"]["due"] >= 1, first
    assert first["result"]["dispatched"] == first["result"]["due"]
    assert first["result"]["due_by_window"] and set(first["result"]["due_by_window"]) <= {"366", "14", "7", "1"}
    assert second["result"]["dispatched"] == 0 and second["result"]["already_handled"] == first["result"]["due"]

    alerts = mails(stack, "Deadline in", first["result"]["due"])
    assert len(alerts) == first["result"]["due"], stack.describe("deadline mails missing in var/mail/new")
    assert all(str(m["To"]) == "ada@nordwind.example" for m in alerts)
    print("walk-through mail:", alerts[0]["Subject"], "| check result:", first["result"])
