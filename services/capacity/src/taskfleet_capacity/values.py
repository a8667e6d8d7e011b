"""A queue's autoscaling settings, read from the chart's values exactly as the chart renders them.

The same files ``helm install -f`` gets: the chart's values.yaml, then each user file laid over it (maps merged,
lists and scalars replaced, as Helm does). A queue entry is ``workerDefaults`` deep-merged with the entry
(templates/_helpers.tpl ``taskfleet.queue``: sprig mergeOverwrite), ``listLength`` 0 means the concurrency; the
ScaledObject (templates/workers/scaledobject.yaml) turns them into KEDA's fields and the HPA behaviour below.
tests/capacity/test_values.py checks this reading against ``helm template``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from taskfleet_core.tasks.queues import QUEUES

from taskfleet_capacity.hpa import Behavior, Policy, Rules


@dataclass(frozen=True)
class QueueScaling:
    """Everything the model needs from the chart for one queue."""

    name: str
    concurrency: int
    prefetch_multiplier: int
    min_replicas: int
    max_replicas: int
    #: KEDA listLength / scalingModifiers target: waiting + running tasks per replica.
    target: float
    #: KEDA activationListLength / activationTarget: active when waiting + running exceeds it.
    activation: float
    polling_interval: float
    cooldown_period: float
    grace_seconds: float
    behavior: Behavior
    #: False when keda.enabled is off: a fixed ``min_replicas`` (= keda.replicasWhenDisabled).
    autoscaled: bool = True
    #: timeLimit: Celery kills a run this long (the model cuts every duration there).
    time_limit: float = math.inf
    #: The queue's fleet-wide rate limit (count, per seconds) from the registry (taskfleet_core QUEUES), or None.
    rate_limit: tuple[int, float] | None = None

    def with_(self, **changes: Any) -> QueueScaling:
        return replace(self, **changes)


def find_chart_values(start: Path | None = None) -> Path:
    """charts/taskfleet/values.yaml of the repository holding ``start`` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "charts" / "taskfleet" / "values.yaml"
        if candidate.exists():
            return candidate
    raise FileNotFoundError("charts/taskfleet/values.yaml not found above the working directory: pass --chart-values")


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of a values file over another: maps merged key by key, everything else replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_values(chart_values: Path, user_files: Sequence[Path] = ()) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(chart_values.read_text()) or {}
    for path in user_files:
        values = merge(values, yaml.safe_load(path.read_text()) or {})
    return values


def _rules(spec: dict[str, Any], select_policy: str) -> Rules:
    """The chart renders one Pods policy per direction (selectPolicy Min down, Max up)."""
    policy = Policy("Pods", int(spec["pods"]), int(spec["periodSeconds"]))
    return Rules(int(spec["stabilizationWindowSeconds"]), (policy,), select_policy)


def queue_scaling(values: dict[str, Any], queue: str) -> QueueScaling:
    entries = {entry["name"]: entry for entry in values.get("queues", [])}
    if queue not in entries:
        raise KeyError(f"queue {queue!r} is not in values.queues ({', '.join(entries) or 'none'})")
    q = merge(values.get("workerDefaults", {}), entries[queue])
    concurrency = int(q["concurrency"])
    keda = values.get("keda", {})
    autoscaled = bool(keda.get("enabled", True))
    fixed = int(keda.get("replicasWhenDisabled", 1))
    return QueueScaling(
        name=queue,
        concurrency=concurrency,
        prefetch_multiplier=int(q.get("prefetchMultiplier", 1)),
        min_replicas=int(q["minReplicaCount"]) if autoscaled else fixed,
        max_replicas=int(q["maxReplicaCount"]) if autoscaled else fixed,
        target=float(int(q.get("listLength", 0)) or concurrency),
        activation=float(q.get("activationListLength", 0)),
        polling_interval=float(q["pollingInterval"]),
        cooldown_period=float(q["cooldownPeriod"]),
        grace_seconds=float(q["terminationGracePeriodSeconds"]),
        behavior=Behavior(_rules(q["scaleUp"], "Max"), _rules(q["scaleDown"], "Min")),
        autoscaled=autoscaled,
        time_limit=float(q.get("timeLimit", math.inf)),
        rate_limit=registry_rate_limit(queue),
    )


def registry_rate_limit(queue: str) -> tuple[int, float] | None:
    """The fleet-wide limit the workers enforce (not a chart value: the queue registry's RateLimit)."""
    spec = QUEUES.get(queue)
    if spec is None or spec.rate_limit is None:
        return None
    return (spec.rate_limit.count, float(spec.rate_limit.per_seconds))
