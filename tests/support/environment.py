"""Point this test process at the test servers: environment variables plus the caches built from them."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


def reset_caches() -> None:
    """Settings, the Valkey client and the API's producer are cached per process; drop them after a change."""
    from taskfleet_api import producer
    from taskfleet_core import settings
    from taskfleet_core.broker import client as valkey

    settings.reload()
    valkey.client.cache_clear()
    producer.celery_app.cache_clear()


@contextmanager
def applied_env(overrides: Mapping[str, str]) -> Iterator[None]:
    """Apply ``overrides`` to ``os.environ`` (and the caches); restore both on exit."""
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    reset_caches()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_caches()
