"""What the tests compare against, kept in the repository (tests/data, refreshed by scripts/vendor-reference).

Nothing here reads outside the repository: a user's clone has no ../shared beside it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "tests" / "data"
#: Upstream KEDA and Prometheus-operator CRDs (source, commit and licence in that folder).
CRDS_DIR = DATA_DIR / "crds"


@functools.cache
def seed000() -> dict[str, Any]:
    """Seed 000's tables: queues, worker_settings, beat_schedule, pipeline_tasks, task_modules, configuration."""
    return json.loads((DATA_DIR / "seed000.json").read_text())
