"""The walk-through in docs/matching.md, run as written against `make up`'s stack (infra/run-local).

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


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setattr("tests.local_stack.test_local_stack.PROGRAMS", PROGRAMS)
    stack = Stack(tmp_path / "var")
    stack.env["TASKFLEET_PROGRAMS"] = ",".join(PROGRAMS)
    stack.start()
    try:
        stack.wait("the stack", stack.all_running, timeout=180)
        api = f"http://127.0.0.1:{stack.ports['api']}"
        stack.wait("the API", lambda: httpx.get(f"{api}/readyz", timeout=2).status_code == 200)
        yield stack
    finally:
        stack.cleanup([])  # SIGTERM to the stack (its orderly stop), then whatever is left of its session


def test_matching_walkthrough_sends_a_deadline_mail(stack: Stack, tmp_path: Path) -> None:
    blocks = sh_blocks(ROOT / "docs" / "matching.md", "## Walk-through against the local stack")
    assert len(blocks) == 2, "the walk-through's shell blocks"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {
        **stack.env,
        "TASKFLEET_API_URL": f"http://127.0.0.1:{stack.ports['api']}",
        "TASKFLEET_API_TOKEN": stack.env["API_TOKENS"],
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "UV_PROJECT": str(ROOT),  # `uv run` from the state directory's parent uses this workspace
    }
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=420)
    (tmp_path / "walkthrough.out").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:], stack.describe("walk-through failed"))

    decoder = json.JSONDecoder()
    checks = [decoder.raw_decode(done.stdout, m.start())[0] for m in re.finditer(r'\{\n  "id"', done.stdout)]
    checks = [c for c in checks if isinstance(c, dict) and "task" in c]
    deadline_checks = [c for c in checks if c["task"] == "email.check_deadline_notifications"]
    first, second = deadline_checks
    assert first["state"] == "SUCCESS" and first["result"]["due"] >= 1, first
    assert first["result"]["dispatched"] == first["result"]["due"]
    assert first["result"]["due_by_window"] and set(first["result"]["due_by_window"]) <= {"366", "14", "7", "1"}
    assert second["result"]["dispatched"] == 0 and second["result"]["already_handled"] == first["result"]["due"]

    mailbox = stack.var / "mail" / "new"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mails = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in mailbox.glob("*")]
        alerts = [m for m in mails if str(m["Subject"]).startswith("Deadline in")]
        if len(alerts) >= first["result"]["due"]:
            break
        time.sleep(0.5)
    assert alerts, stack.describe("no deadline mail in var/mail/new")
    assert all(str(m["To"]) == "ada@nordwind.example" for m in alerts)
    print("walk-through mail:", alerts[0]["Subject"], "| check result:", first["result"])
