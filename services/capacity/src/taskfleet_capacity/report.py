"""What a run tells a platform engineer: wait percentiles, peak backlog, cost, scale-in damage; and the plots."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskfleet_capacity.sim import Result


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(result: Result) -> dict[str, Any]:
    waits = result.waits
    latencies = sorted(t.end - t.arrival for t in result.tasks if t.end is not None)
    busy = sum(s.busy_victims for s in result.scale_ins)
    return {
        "tasks": len(result.tasks),
        "wait_p50": percentile(waits, 50),
        "wait_p95": percentile(waits, 95),
        "wait_p99": percentile(waits, 99),
        "wait_max": waits[-1] if waits else 0.0,
        "latency_p95": percentile(latencies, 95),
        "peak_backlog": result.peak_backlog,
        "pod_seconds": result.pod_seconds,
        "pod_hours": result.pod_seconds / 3600,
        "peak_replicas": max((s.replicas for s in result.samples), default=0),
        "drain_time": result.drain_time,
        "scale_in_victims": sum(s.victims for s in result.scale_ins),
        "busy_victims": busy,
        "running_at_sigterm": sum(s.running_at_sigterm for s in result.scale_ins),
        "drained": result.drained,
        "interrupted": result.interrupted,
        "restored": result.restored,
        "deferred": result.deferred,
        "simulated_seconds": result.end,
    }


def format_summary(stats: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"tasks                 {stats['tasks']}",
            f"queue wait p50/p95/p99 {stats['wait_p50']:.1f} / {stats['wait_p95']:.1f} / {stats['wait_p99']:.1f} s"
            f" (max {stats['wait_max']:.1f} s)",
            f"publish->done p95     {stats['latency_p95']:.1f} s",
            f"peak backlog          {stats['peak_backlog']} waiting",
            f"replicas (peak)       {stats['peak_replicas']}",
            f"cost                  {stats['pod_hours']:.2f} pod-hours ({stats['pod_seconds']:.0f} pod-seconds)",
            f"scale-in              {stats['scale_in_victims']} pods removed, {stats['busy_victims']} of them busy;"
            f" {stats['running_at_sigterm']} running tasks got SIGTERM: {stats['drained']} drained,"
            f" {stats['interrupted']} interrupted (run again); {stats['restored']} reserved returned",
            f"rate limit            {stats['deferred']} runs deferred",
        ]
    )


def plot(result: Result, path: Path, title: str = "") -> Path:
    """Backlog, replicas and queue wait over time, one PNG (matplotlib, Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    span = max(result.end, 1.0)
    unit, scale = ("h", 3600.0) if span > 3 * 3600 else ("min", 60.0)
    t = [s.at / scale for s in result.samples]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    ax1.plot(t, [s.waiting for s in result.samples], color="tab:red", lw=1)
    ax1.set_ylabel("backlog (waiting)")
    ax2.step(t, [s.replicas for s in result.samples], where="post", label="replicas (HPA/KEDA)", lw=1.2)
    ax2.step(t, [s.ready for s in result.samples], where="post", label="ready", lw=1, ls="--")
    ax2.step(t, [s.terminating for s in result.samples], where="post", label="terminating (draining)", lw=1)
    ax2.set_ylabel("pods")
    ax2.legend(loc="upper right", fontsize=8)
    started = sorted((task.start, task.start - task.arrival) for task in result.tasks if task.start is not None)
    ax3.scatter([s / scale for s, _ in started], [w for _, w in started], s=3, color="tab:blue")
    ax3.set_ylabel("queue wait (s)")
    ax3.set_xlabel(f"time ({unit})")
    fig.suptitle(textwrap.fill(title or result.model.scaling.name, 120), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
