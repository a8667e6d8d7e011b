"""Schemathesis hooks for tests/api/test_fuzz.py (loaded through ``SCHEMATHESIS_HOOKS``).

One rule of ``POST /api/v1/jobs`` cannot be written in JSON Schema: an ``eta`` at most
``API_MAX_DELAY_SECONDS`` (7 days) from *now* (``countdown`` carries the same bound as its ``maximum``).
Bodies whose eta lies beyond it are left out of generation instead of being reported as
"schema-valid request rejected"; the 422 for them is tested by tests/integration/test_api.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis

MAX_DELAY = timedelta(days=7)  # the API's default API_MAX_DELAY_SECONDS


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("eta"), str):
        return True
    try:
        eta = datetime.fromisoformat(body["eta"])
    except ValueError:
        return True  # not a date-time: the spec's own negative case
    if eta.tzinfo is None:
        return True
    return eta - datetime.now(UTC) < MAX_DELAY - timedelta(minutes=5)
