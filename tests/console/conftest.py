"""One Fleet for the console's tests (its own Valkey, uvicorn API with an admin and a read token, workers, Beat):
the browser tests and the CLI's progress tests share it, so the processes start once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import Fleet

READ_TOKEN = "console-read-token-0123456789"


@pytest.fixture(scope="package")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(Path(tmp_path_factory.mktemp("console")), API_READ_TOKENS=READ_TOKEN).start()
    yield fleet
    fleet.stop()


@pytest.fixture
def default_worker(fleet: Fleet) -> None:
    """A prefork default worker (the canary's queue): started when none is running, kept for the next test."""
    if not any(proc.process is not None and proc.process.poll() is None for proc in fleet.workers):
        fleet.start_workers("default", 1)


@pytest.fixture
def no_workers(fleet: Fleet) -> None:
    """Nothing consumes: submitted jobs stay waiting (the workers' jobs are final by then)."""
    fleet.stop_workers()
