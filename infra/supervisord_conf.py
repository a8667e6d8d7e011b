"""Render infra/supervisord.conf.in into the local stack's supervisord config (infra/run-local calls it).

    python infra/supervisord_conf.py --var var [--no-broker] [--programs api,valkey,...] > var/supervisord.conf

Ports come from the environment, defaulting to the README's: ``VALKEY_PORT`` (6379), ``API_PORT`` (8000),
``SMTP_PORT`` (1025, the SMTP sink; the workers read the same variable), ``FEEDS_PORT`` (8090),
``PROMETHEUS_PORT`` (9090) and ``METRICS_PORT_BASE`` (9808: the queue exporter; the workers at base+3..base+6,
Beat at base+7, which infra/observability/prometheus/prometheus.yml scrapes). A worker's stop wait is its
queue's hard time limit plus margin (as the chart's terminationGracePeriodSeconds), unless
``WORKER_STOP_WAIT_SECONDS`` is set. ``--programs`` keeps only the named programs (the tests run a subset).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from string import Template

from taskfleet_core.reliability.shutdown import grace_period_seconds
from taskfleet_core.tasks.queues import QUEUES

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "supervisord.conf.in"

#: Every program of the template, in the README's order.
PROGRAMS = (
    "valkey",
    "api",
    "worker-default",
    "worker-matching",
    "worker-email",
    "worker-sync",
    "beat",
    "queue-exporter",
    "prometheus",
    "smtp-sink",
    "feeds",
)

_SECTION = re.compile(r"^\[(?P<kind>[\w-]+)(?::(?P<name>[\w-]+))?\]\s*$")


def values(var: Path) -> dict[str, str]:
    env = os.environ
    metrics = int(env.get("METRICS_PORT_BASE", "9808"))
    out = {
        "root": str(ROOT),
        "var": str(var.resolve()),
        "valkey_port": env.get("VALKEY_PORT", "6379"),
        "api_port": env.get("API_PORT", "8000"),
        "smtp_port": env.get("SMTP_PORT", "1025"),
        "feeds_port": env.get("FEEDS_PORT", "8090"),
        "prometheus_port": env.get("PROMETHEUS_PORT", "9090"),
        "exporter_metrics_port": str(metrics),
        "beat_metrics_port": str(metrics + 7),
    }
    stop_wait = env.get("WORKER_STOP_WAIT_SECONDS")
    for offset, queue in enumerate(("default", "matching", "email", "sync"), start=3):
        out[f"worker_{queue}_metrics_port"] = str(metrics + offset)
        out[f"worker_{queue}_stopwaitsecs"] = stop_wait or str(grace_period_seconds(QUEUES[queue]))
    return out


def select(text: str, programs: set[str]) -> str:
    """Drop the ``[program:x]`` sections not in ``programs``, and groups left empty."""
    chunks: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if _SECTION.match(line):
            chunks.append([])
        chunks[-1].append(line)
    kept: list[str] = []
    for chunk in chunks:
        match = _SECTION.match(chunk[0]) if chunk else None
        if match and match["kind"] == "program" and match["name"] not in programs:
            continue
        if match and match["kind"] == "group":
            members = []
            for i, line in enumerate(chunk):
                if line.startswith("programs="):
                    members = [p for p in line.removeprefix("programs=").strip().split(",") if p in programs]
                    chunk[i] = "programs=" + ",".join(members) + "\n"
            if not members:
                continue
        kept.extend(chunk)
    return "".join(kept)


def render(var: Path, programs: set[str]) -> str:
    unknown = programs - set(PROGRAMS)
    if unknown:
        raise SystemExit(f"unknown programs: {', '.join(sorted(unknown))} (known: {', '.join(PROGRAMS)})")
    text = Template(TEMPLATE.read_text()).substitute(values(var))
    header = f"# Generated from {TEMPLATE.relative_to(ROOT)} by infra/run-local: edit the template, not this file.\n"
    return header + select(text, programs)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--var", type=Path, default=ROOT / "var", help="state directory (logs, AOF, mail, socket)")
    parser.add_argument("--programs", default=",".join(PROGRAMS), help="comma-separated subset to run")
    parser.add_argument("--no-broker", action="store_true", help="REDIS_URL is set: start no valkey")
    args = parser.parse_args(argv)
    programs = {p.strip() for p in args.programs.split(",") if p.strip()}
    if args.no_broker:
        programs.discard("valkey")
    sys.stdout.write(render(args.var, programs))


if __name__ == "__main__":
    main(sys.argv[1:])
