"""The long chaos scenarios run only under ``make chaos`` (TASKFLEET_CHAOS=1), never in ``make test``."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("TASKFLEET_CHAOS") == "1":
        return
    skip = pytest.mark.skip(reason="long chaos scenario: run `make chaos`")
    for item in items:
        if "tests/chaos/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _fleet_env(fleet_env: dict[str, str]) -> None:
    """Every test of this suite runs against the session's servers and environment (tests/conftest.py)."""
