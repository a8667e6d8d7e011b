"""Reliability tests run against the session's servers (a scenario's ``Fleet`` also starts its own)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _fleet_env(fleet_env: dict[str, str]) -> None:
    """Every test of this suite runs against the session's servers and environment (tests/conftest.py)."""
