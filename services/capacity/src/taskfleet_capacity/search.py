"""The cheapest chart values meeting a wait objective: a grid of queue settings, each replayed on the same trace.

Candidates are queue entries of values.queues (chart key names), so the winner pastes into the values file as
is; candidates the chart would refuse to render (templates/_validate.tpl: cooldownPeriod and the scale-down
stabilisation window longer than terminationGracePeriodSeconds, that one at least timeLimit + graceMarginSeconds,
maxReplicaCount >= minReplicaCount and >= fallback.replicas) are skipped. Cheapest = fewest pod-seconds (within
0.5 %: a tie), then the shorter p95 wait, then the fewest changes to the current entry.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from taskfleet_capacity.report import summary
from taskfleet_capacity.sim import Model, simulate
from taskfleet_capacity.traces import Arrival
from taskfleet_capacity.values import merge, queue_scaling

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
#: Objective names -> summary keys.
METRICS = {
    "p50": "wait_p50",
    "p95": "wait_p95",
    "p99": "wait_p99",
    "max": "wait_max",
    "latency_p95": "latency_p95",
    "backlog": "peak_backlog",
    "interrupted": "interrupted",
}


@dataclass(frozen=True)
class Objective:
    metric: str
    op: str
    bound: float

    def met(self, stats: Mapping[str, Any]) -> bool:
        return _OPS[self.op](float(stats[METRICS[self.metric]]), self.bound)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def parse_objectives(text: str) -> list[Objective]:
    """``p95<60`` or several, comma-separated: ``p95<60,p99<=300,interrupted<1``."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"([a-z0-9_]+)\s*(<=|>=|<|>)\s*([0-9.]+)", part)
        if not match or match[1] not in METRICS:
            raise ValueError(f"objective {part!r}: expected e.g. p95<60; metrics: {', '.join(METRICS)}")
        out.append(Objective(match[1], match[2], float(match[3])))
    return out


def default_grid(queue: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Around the queue's current entry: polling, tasks per replica, min/max, cooldown."""
    c = int(queue["concurrency"])
    grace = int(queue["terminationGracePeriodSeconds"])
    top = int(queue["maxReplicaCount"])
    return {
        "pollingInterval": [5, 15, 30],
        "listLength": sorted({max(1, c // 2), c, 2 * c}),
        "minReplicaCount": [0, 1],
        "maxReplicaCount": sorted({max(1, top // 2), top, 2 * top}),
        "cooldownPeriod": sorted({grace + 70, int(queue["cooldownPeriod"])}),
    }


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``--grid pollingInterval=5,15`` (dotted keys for nested ones: ``scaleDown.stabilizationWindowSeconds``)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, _, values = item.partition("=")
        grid[key.strip()] = [int(v) if v.strip().lstrip("-").isdigit() else float(v) for v in values.split(",")]
    return grid


def nested(key: str, value: Any) -> dict[str, Any]:
    head, _, rest = key.partition(".")
    return {head: nested(rest, value) if rest else value}


def _get(entry: Mapping[str, Any], key: str) -> Any:
    value: Any = entry
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def renders(entry: Mapping[str, Any]) -> bool:
    """The chart's own checks on a queue entry (templates/_validate.tpl), so a winner never fails the render."""
    grace = int(entry["terminationGracePeriodSeconds"])
    return (
        int(entry["maxReplicaCount"]) >= int(entry["minReplicaCount"])
        and int(entry["maxReplicaCount"]) >= int(entry["fallback"]["replicas"])
        and grace >= int(entry["timeLimit"]) + int(entry["graceMarginSeconds"])
        and int(entry["cooldownPeriod"]) > grace
        and int(entry["scaleDown"]["stabilizationWindowSeconds"]) > grace
    )


@dataclass
class Candidate:
    changes: dict[str, Any]
    stats: dict[str, Any]
    met: bool


def search(
    values: dict[str, Any],
    queue: str,
    model: Model,
    arrivals: Sequence[Arrival],
    objectives: Sequence[Objective],
    grid: Mapping[str, Sequence[Any]] | None = None,
) -> list[Candidate]:
    """Every renderable candidate of the grid, cheapest first among those meeting the objectives, then the rest."""
    entries = [e for e in values["queues"] if e["name"] == queue]
    if not entries:
        raise KeyError(f"queue {queue!r} is not in values.queues")
    base_entry = merge(values.get("workerDefaults", {}), entries[0])
    grid = dict(grid or default_grid(base_entry))
    keys = list(grid)
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        changes = dict(zip(keys, combo, strict=True))
        entry = base_entry
        for key, value in changes.items():
            entry = merge(entry, nested(key, value))
        if not renders(entry):
            continue
        candidate_values = {**values, "queues": [entry if e["name"] == queue else e for e in values["queues"]]}
        scaling = queue_scaling(candidate_values, queue).with_(rate_limit=model.scaling.rate_limit)
        stats = summary(simulate(replace(model, scaling=scaling, sample_every=300), arrivals))  # no plots: few samples
        out.append(Candidate(changes, stats, all(o.met(stats) for o in objectives)))

    def changed(c: Candidate) -> int:
        return sum(1 for key, value in c.changes.items() if _get(base_entry, key) != value)

    # Pod-seconds within 0.5 % of each other are a tie: then the shorter p95 wait, then the fewest changes.
    grain = 0.005 * max(1.0, min((c.stats["pod_seconds"] for c in out), default=1.0))
    out.sort(key=lambda c: (not c.met, round(c.stats["pod_seconds"] / grain), c.stats["wait_p95"], changed(c)))
    return out
