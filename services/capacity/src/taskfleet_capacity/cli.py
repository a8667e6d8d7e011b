"""``taskfleet-capacity``: replay a workload on the model of a queue's autoscaling (docs/capacity.md).

    taskfleet-capacity simulate  --queue sync [-f my-values.yaml] --trace beat:days=7 --duration lognormal:90:0.6 \
                                 --cold-start 20 [--deletion-cost] [--plot sync.png] [--json]
    taskfleet-capacity compare   ... same inputs: the run without and with pod-deletion-cost, side by side
    taskfleet-capacity recommend ... --objective 'p95<60' [--grid pollingInterval=5,15 ...] [--top 5]

Values: the chart's values.yaml (found above the working directory, or --chart-values) with every -f file over
it, as helm install takes them; --set KEY=VALUE changes the queue's entry (chart key names, dotted for nested).
Workload: --workload FILE (YAML: duration, cold_start, redelivery_delay, fanout) with flags over it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from taskfleet_capacity import durations, report, search, traces
from taskfleet_capacity.search import nested
from taskfleet_capacity.sim import REDELIVERY_SECONDS, Model, Result, simulate
from taskfleet_capacity.values import find_chart_values, load_values, merge, queue_scaling


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--queue", required=True, help="a queue of values.queues")
    common.add_argument("-f", "--values", type=Path, action="append", default=[], help="values file (repeatable)")
    common.add_argument("--chart-values", type=Path, help="the chart's values.yaml (default: charts/taskfleet)")
    common.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change the queue entry")
    common.add_argument("--trace", required=True, help="CSV file, steady:..., bursts:..., beat:...")
    common.add_argument("--fanout", action="append", default=[], metavar="TASK=N", help="tasks per Beat run")
    common.add_argument("--workload", type=Path, help="YAML: duration, cold_start, redelivery_delay, fanout")
    common.add_argument("--duration", help="task duration distribution (e.g. lognormal:60:0.8; default 30)")
    common.add_argument("--cold-start", help="pod start -> ready distribution (default 30)")
    common.add_argument(
        "--redelivery-delay", type=float, help=f"killed task back in the list after (s, {REDELIVERY_SECONDS:g})"
    )
    common.add_argument("--rate-limit", help="fleet-wide starts N/SECONDS, or none (default: the queue registry's)")
    common.add_argument("--deletion-cost", action="store_true", help="pods carry pod-deletion-cost = work held")
    common.add_argument("--seed", type=int, default=1)
    common.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser = argparse.ArgumentParser(prog="taskfleet-capacity", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    simulate_p = sub.add_parser("simulate", parents=[common], help="one run: figures and a plot")
    simulate_p.add_argument("--plot", type=Path, help="write backlog/replicas/wait over time to this PNG")
    compare_p = sub.add_parser("compare", parents=[common], help="scale-in without and with pod-deletion-cost")
    compare_p.add_argument("--plot", type=Path, help="PNG prefix: <prefix>-without.png, <prefix>-with.png")
    recommend_p = sub.add_parser("recommend", parents=[common], help="the cheapest values meeting an objective")
    recommend_p.add_argument("--objective", required=True, help="e.g. 'p95<60' or 'p95<60,interrupted<1'")
    recommend_p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="candidate values")
    recommend_p.add_argument("--top", type=int, default=5)
    return parser


def _values(args: argparse.Namespace) -> dict[str, Any]:
    values = load_values(args.chart_values or find_chart_values(), args.values)
    for item in args.set:
        key, _, raw = item.partition("=")
        values["queues"] = [
            merge(e, nested(key.strip(), yaml.safe_load(raw))) if e["name"] == args.queue else e
            for e in values["queues"]
        ]
    return values


def _model(args: argparse.Namespace, values: dict[str, Any]) -> tuple[Model, dict[str, int]]:
    workload: dict[str, Any] = yaml.safe_load(args.workload.read_text()) if args.workload else {}
    duration = args.duration or str(workload.get("duration", 30))
    cold = args.cold_start or str(workload.get("cold_start", 30))
    redelivery = args.redelivery_delay if args.redelivery_delay is not None else workload.get("redelivery_delay")
    fanout = {str(k): int(v) for k, v in (workload.get("fanout") or {}).items()}
    for item in args.fanout:
        task, _, n = item.partition("=")
        fanout[task.strip()] = int(n)
    scaling = queue_scaling(values, args.queue)
    if args.rate_limit:
        count, _, per = args.rate_limit.partition("/")
        scaling = scaling.with_(rate_limit=None if args.rate_limit == "none" else (int(count), float(per or 60)))
    model = Model(
        scaling=scaling,
        duration=durations.parse(duration),
        cold_start=durations.parse(cold),
        deletion_cost=args.deletion_cost,
        redelivery_delay=float(redelivery) if redelivery is not None else REDELIVERY_SECONDS,
        seed=args.seed,
    )
    return model, fanout


def _describe(model: Model) -> str:
    q = model.scaling
    return (
        f"queue {q.name}: concurrency {q.concurrency}, {q.target:g} tasks/replica, replicas {q.min_replicas}-"
        f"{q.max_replicas}, polling {q.polling_interval:g} s, cooldown {q.cooldown_period:g} s, grace "
        f"{q.grace_seconds:g} s; duration {model.duration}, cold start {model.cold_start}"
        f"{', pod-deletion-cost on' if model.deletion_cost else ''}"
        f"{f', rate limit {q.rate_limit[0]}/{q.rate_limit[1]:g} s' if q.rate_limit else ''}"
    )


def _run(model: Model, arrivals: Sequence[traces.Arrival], plot: Path | None, title: str) -> Result:
    result = simulate(model, arrivals)
    if plot:
        report.plot(result, plot, title)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"taskfleet-capacity: {message}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    values = _values(args)
    model, fanout = _model(args, values)
    arrivals = traces.generate(args.trace, args.queue, random.Random(args.seed), fanout)
    if args.command == "simulate":
        stats = report.summary(_run(model, arrivals, args.plot, _describe(model)))
        print(json.dumps(stats, indent=2) if args.json else f"{_describe(model)}\n{report.format_summary(stats)}")
        return 0
    if args.command == "compare":
        rows = {}
        for on in (False, True):
            variant = replace(model, deletion_cost=on)
            plot = args.plot.with_name(f"{args.plot.stem}-{'with' if on else 'without'}.png") if args.plot else None
            rows["with" if on else "without"] = report.summary(_run(variant, arrivals, plot, _describe(variant)))
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(_describe(model))
            for name, stats in rows.items():
                print(f"\n--- {name} pod-deletion-cost\n{report.format_summary(stats)}")
        return 0
    objectives = search.parse_objectives(args.objective)
    grid = search.parse_grid(args.grid) if args.grid else None
    candidates = search.search(values, args.queue, model, arrivals, objectives, grid)
    winners = [c for c in candidates if c.met]
    if args.json:
        print(json.dumps([{"changes": c.changes, "met": c.met, **c.stats} for c in candidates[: args.top]], indent=2))
        return 0 if winners else 1
    print(f"{_describe(model)}\n{len(candidates)} candidates, {len(winners)} meet {args.objective}\n")
    print(f"{'pod-hours':>9} {'p50':>7} {'p95':>7} {'p99':>7} {'backlog':>7}  values")
    for c in candidates[: args.top]:
        s = c.stats
        mark = "" if c.met else "  (misses)"
        changes = " ".join(f"{k}={v}" for k, v in c.changes.items())
        print(
            f"{s['pod_hours']:9.2f} {s['wait_p50']:7.1f} {s['wait_p95']:7.1f} {s['wait_p99']:7.1f} "
            f"{s['peak_backlog']:7d}  {changes}{mark}"
        )
    if not winners:
        print("\nno candidate meets the objective: widen the grid (--grid maxReplicaCount=...)", file=sys.stderr)
        return 1
    entry: dict[str, Any] = {"name": args.queue}
    for key, value in winners[0].changes.items():
        entry = merge(entry, nested(key, value))
    print("\nvalues (queues entry, over the current one):\n" + yaml.safe_dump({"queues": [entry]}, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
