"""Arrival traces: when tasks of a queue are published (seconds from the trace's start, sorted).

FILE.csv                               rows ``timestamp[,queue[,duration]]``: unix seconds or ISO 8601 times,
                                       relative to the first row; a duration column overrides the model's
steady:rate=0.5,hours=2                Poisson arrivals at ``rate`` per second
bursts:size=200,every=3600,hours=24    ``size`` tasks at once every ``every`` seconds (first at 60 s);
                                       ``spread=30`` spreads each burst over 30 s
beat:days=7                            the Beat schedule's own entries for the queue (taskfleet_beat.schedule,
                                       UTC, from a Monday 00:00), each due time sending ``fanout`` tasks
                                       (``--fanout TASK=N``: how many tasks one run becomes, e.g. a sync chord
                                       of five sources is 6)
"""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path


@dataclass(frozen=True)
class Arrival:
    at: float
    #: A duration from the trace itself (CSV column), else None: the model's distribution decides.
    duration: float | None = None


def _options(text: str) -> dict[str, float]:
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        out[key.strip()] = float(value)
    return out


def _horizon(opts: Mapping[str, float], default_hours: float) -> float:
    return opts.get("seconds", opts.get("hours", opts.get("days", 0) * 24 or default_hours) * 3600)


def _timestamp(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def from_csv(path: Path, queue: str | None = None) -> list[Arrival]:
    rows: list[tuple[float, float | None]] = []
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            if not row or row[0].startswith("#"):
                continue
            try:
                at = _timestamp(row[0].strip())
            except ValueError:
                continue  # header
            if queue and len(row) > 1 and row[1].strip() and row[1].strip() != queue:
                continue
            duration = float(row[2]) if len(row) > 2 and row[2].strip() else None
            rows.append((at, duration))
    if not rows:
        raise ValueError(f"{path}: no arrivals{f' for queue {queue}' if queue else ''}")
    rows.sort()
    start = rows[0][0]
    return [Arrival(at - start, duration) for at, duration in rows]


def steady(rate: float, seconds: float, rng: random.Random) -> list[Arrival]:
    out: list[Arrival] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            return out
        out.append(Arrival(t))


def bursts(
    size: int, every: float, seconds: float, rng: random.Random, spread: float = 0.0, first: float = 60.0
) -> list[Arrival]:
    out: list[Arrival] = []
    t = first
    while t < seconds:
        out += [Arrival(t + (rng.uniform(0, spread) if spread else 0.0)) for _ in range(size)]
        t += every
    return sorted(out, key=lambda a: a.at)


def beat(queue: str, seconds: float, fanout: Mapping[str, int], start: datetime | None = None) -> list[Arrival]:
    """Due times of the Beat entries whose contract runs on ``queue`` (minute resolution, as crontab is)."""
    from taskfleet_beat.schedule import entries
    from taskfleet_beat.settings import BeatSettings
    from taskfleet_core.tasks.contracts import contract_for

    start = start or datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    mine = [e for e in entries(BeatSettings()) if contract_for(e.task).queue == queue]
    out: list[Arrival] = []
    for minute in range(int(seconds // 60)):
        now = start + timedelta(minutes=minute)
        dow = (now.weekday() + 1) % 7  # crontab counts from Sunday = 0
        moment = {"minute": now.minute, "hour": now.hour, "day_of_week": dow, "day_of_month": now.day}
        moment["month_of_year"] = now.month
        for entry in mine:
            # crontab's expanded sets (celery-types does not declare them)
            if all(value in getattr(entry.schedule, name) for name, value in moment.items()):
                out += [Arrival(minute * 60.0)] * fanout.get(entry.task, 1)
    return out


def generate(spec: str, queue: str, rng: random.Random, fanout: Mapping[str, int] | None = None) -> list[Arrival]:
    kind, _, rest = spec.partition(":")
    if kind == "steady":
        opts = _options(rest)
        return steady(opts["rate"], _horizon(opts, 1), rng)
    if kind == "bursts":
        opts = _options(rest)
        every = opts.get("every", 3600)
        return bursts(int(opts["size"]), every, _horizon(opts, 24), rng, opts.get("spread", 0.0), opts.get("first", 60))
    if kind == "beat":
        opts = _options(rest)
        return beat(queue, _horizon(opts, 24 * 7), fanout or {})
    path = Path(spec)
    if path.exists():
        return from_csv(path, queue)
    raise ValueError(f"trace {spec!r}: not a file, nor steady:/bursts:/beat:")
