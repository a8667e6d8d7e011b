"""Task-duration (and cold-start) distributions: fixed, exponential, lognormal, an empirical sample, or the
fleet's own Prometheus histogram (``celery_task_runtime``), each drawn from a seeded ``random.Random``.

Spec strings, as the CLI and workload YAML take them::

    30                      fixed 30 s (also ``fixed:30``)
    exp:30                  exponential, mean 30 s
    lognormal:30:0.8        lognormal, median 30 s, sigma 0.8
    empirical:runs.txt      resample the numbers of a file (one per line, or the first CSV column)
    histogram:metrics.txt   the fleet's celery_task_runtime buckets (Prometheus text), inverse CDF with linear
                            interpolation inside a bucket; ``histogram:FILE:QUEUE[:TASK]`` narrows the series
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

#: The fleet's runtime histogram (taskfleet_core.observability.metrics.TASK_RUNTIME).
RUNTIME_METRIC = "celery_task_runtime"


@dataclass(frozen=True)
class Distribution:
    kind: str
    params: tuple[float, ...] = ()
    sample_values: tuple[float, ...] = ()
    #: For histograms: the cumulative fractions and their upper bounds.
    cdf: tuple[tuple[float, float], ...] = ()

    def draw(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.params[0]
        if self.kind == "exp":
            return rng.expovariate(1.0 / self.params[0])
        if self.kind == "lognormal":
            return rng.lognormvariate(math.log(self.params[0]), self.params[1])
        if self.kind == "empirical":
            return rng.choice(self.sample_values)
        return self._from_cdf(rng.random())

    def _from_cdf(self, u: float) -> float:
        fractions = [f for f, _ in self.cdf]
        i = bisect.bisect_left(fractions, u)
        if i >= len(self.cdf):
            return self.cdf[-1][1]
        lo_f, lo_b = (0.0, 0.0) if i == 0 else self.cdf[i - 1]
        hi_f, hi_b = self.cdf[i]
        return lo_b if hi_f <= lo_f else lo_b + (hi_b - lo_b) * (u - lo_f) / (hi_f - lo_f)

    @property
    def mean(self) -> float:
        if self.kind in ("fixed", "exp"):
            return self.params[0]
        if self.kind == "lognormal":
            return self.params[0] * math.exp(self.params[1] ** 2 / 2)
        if self.kind == "empirical":
            return sum(self.sample_values) / len(self.sample_values)
        total, prev_f, prev_b = 0.0, 0.0, 0.0
        for f, b in self.cdf:
            total += (f - prev_f) * (prev_b + b) / 2
            prev_f, prev_b = f, b
        return total

    def __str__(self) -> str:
        if self.kind in ("fixed", "exp", "lognormal"):
            return f"{self.kind}:{':'.join(f'{p:g}' for p in self.params)}"
        return f"{self.kind} (mean {self.mean:.3g} s)"


def fixed(seconds: float) -> Distribution:
    return Distribution("fixed", (float(seconds),))


def parse(spec: str) -> Distribution:
    kind, _, rest = spec.partition(":")
    try:
        if not rest:
            return fixed(float(kind))
        args = rest.split(":")
        if kind == "fixed":
            return fixed(float(args[0]))
        if kind == "exp":
            return Distribution("exp", (float(args[0]),))
        if kind == "lognormal":
            return Distribution("lognormal", (float(args[0]), float(args[1])))
        if kind == "empirical":
            return empirical(read_numbers(Path(rest)))
        if kind == "histogram":
            path, *labels = args
            return from_histogram(Path(path).read_text(), *labels)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"bad distribution {spec!r}: {exc}") from None
    raise ValueError(f"unknown distribution {spec!r} (fixed, exp, lognormal, empirical, histogram)")


def empirical(values: Sequence[float]) -> Distribution:
    if not values:
        raise ValueError("an empirical distribution needs at least one value")
    return Distribution("empirical", sample_values=tuple(float(v) for v in values))


def read_numbers(path: Path) -> list[float]:
    numbers = []
    for line in path.read_text().splitlines():
        field = line.split(",")[0].strip()
        try:
            numbers.append(float(field))
        except ValueError:
            continue  # a header or a comment
    return numbers


def from_histogram(text: str, queue: str = "", task: str = "", metric: str = RUNTIME_METRIC) -> Distribution:
    """Sum the buckets of every matching series (Prometheus exposition text) into one distribution."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            if queue and sample.labels.get("queue_name") != queue or task and sample.labels.get("name") != task:
                continue
            bound = float(sample.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    if not buckets or max(buckets.values()) == 0:
        raise ValueError(f"no {metric} observations{f' for queue {queue}' if queue else ''}")
    total = buckets[max(buckets)]
    finite = sorted(b for b in buckets if math.isfinite(b))
    cdf = [(buckets[b] / total, b) for b in finite]
    if buckets.get(math.inf, total) > (buckets[finite[-1]] if finite else 0):
        cdf.append((1.0, finite[-1] if finite else 0.0))  # past the last bound: the last bound is all we know
    return Distribution("histogram", cdf=tuple(cdf))
