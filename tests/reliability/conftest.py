"""Reliability tests run against the session's servers; each module also gets a ``Fleet`` of its own (its own
Valkey with AOF, SMTP server, API), and ``clean`` stops the module's workers after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import Fleet


@pytest.fixture(scope="session", autouse=True)
def _fleet_env(fleet_env: dict[str, str]) -> None:
    """Every test of this suite runs against the session's servers and environment (tests/conftest.py)."""


@pytest.fixture(scope="module")
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(Path(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))).start()
    yield fleet
    fleet.stop()


@pytest.fixture
def clean(fleet: Fleet) -> Iterator[Fleet]:
    yield fleet
    fleet.stop_workers()
