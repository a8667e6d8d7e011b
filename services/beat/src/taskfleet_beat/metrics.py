"""Beat's metrics: sends and last successful send per schedule entry, and when the next is due.

Celery marks Beat's messages only with ``celery_beat_task``; we stamp each entry's
options with its name (``taskfleet_beat_entry`` header) so a publish is counted per
entry. ``taskfleet_beat_next_send_timestamp_seconds`` is computed at scrape time from
the entry's schedule and the fleet's last-sent record in Valkey (catchup.py; before the
first record, this process's last send), so every Beat reports the same time: once it
lies in the past by more than a few minutes, Beat missed that entry (alert
``TaskfleetBeatMissedSchedule``). Alerts take the max over Beat instances.

``taskfleet_beat_missed_total{entry}`` counts due times no Beat sent because they were
older than the entry's catch-up window (catchup.py; alert ``TaskfleetBeatMissedRuns``).
It is read from Valkey at scrape time (``BEAT_MISSED_KEY``, incremented by the leader in the
same compare-and-set that records the miss): every Beat shows the same fleet-wide count, it
never resets when a Beat restarts, and every entry shows 0 from the start, so ``increase()``
sees the first miss.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery, signals
from celery.schedules import BaseSchedule, maybe_schedule, schedule
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from taskfleet_core.broker import client as valkey
from taskfleet_core.broker.keys import BEAT_MISSED_KEY
from taskfleet_core.observability import logs, metrics, task_metrics, tracing
from taskfleet_core.settings import ObservabilitySettings, load

from taskfleet_beat import catchup

ENTRY_HEADER = "taskfleet_beat_entry"

_last_send: dict[str, float] = {}
_state: dict[str, Any] = {}


def instrument(app: Celery) -> None:
    """Call once the schedule is set on ``app.conf.beat_schedule``."""
    if _state:
        return
    _state["app"] = app
    _state["started"] = time.time()
    for name, entry in app.conf.beat_schedule.items():
        headers = entry.setdefault("options", {}).setdefault("headers", {})
        headers[ENTRY_HEADER] = name
    task_metrics.instrument_producer("beat")
    signals.after_task_publish.connect(_sent, weak=False)
    signals.beat_init.connect(_serve, weak=False)
    signals.after_setup_logger.connect(_json_logs, weak=False)


def _sent(headers: dict[str, Any] | None = None, **_: Any) -> None:
    headers = headers or {}
    entry = headers.get(ENTRY_HEADER)
    if entry is None:
        return
    now = time.time()
    _last_send[entry] = now
    metrics.BEAT_SENDS.labels(entry, headers.get("task", "")).inc()
    metrics.BEAT_LAST_SEND.labels(entry, headers.get("task", "")).set(now)


class NextSendCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "taskfleet_beat_next_send_timestamp_seconds",
            "When Beat should next send the entry (unix seconds); in the past = missed.",
            labels=["entry", "name"],
        )
        now = time.time()
        records = _records()
        for name, entry in _state["app"].conf.beat_schedule.items():
            sched = _schedule_of(entry["schedule"], _state["app"])
            if name in records:  # the fleet's record (catchup.py): every Beat reports the same next due time
                family.add_metric([name, entry["task"]], catchup.next_due_after(sched, records[name]).timestamp())
                continue
            last = datetime.fromtimestamp(_last_send.get(name, _state["started"]), UTC)
            family.add_metric([name, entry["task"]], now + sched.remaining_estimate(last).total_seconds())
        yield family


def _records() -> dict[str, datetime]:
    """Each entry's last handled due time from Valkey; empty when Valkey does not answer."""
    try:
        raw = catchup.RecordStore(valkey.client()).read_all()
    except redis.RedisError:
        return {}
    out = {}
    for name, value in raw.items():
        with contextlib.suppress(ValueError, KeyError):
            out[name] = catchup.Record.decode(value).due_at
    return out


class MissedCollector(Collector):
    """``taskfleet_beat_missed_total{entry, name}``: the fleet-wide count kept in Valkey."""

    def collect(self) -> Iterable[CounterMetricFamily]:
        try:
            counts = valkey.client().hgetall(BEAT_MISSED_KEY)
        except redis.RedisError:
            return  # no sample rather than a wrong zero; TaskfleetBeatDown and the logs cover a lost Valkey
        family = CounterMetricFamily(
            "taskfleet_beat_missed",
            "Due times of a schedule entry no Beat sent: older than its catch-up window when a leader came.",
            labels=["entry", "name"],
        )
        for name, entry in _state["app"].conf.beat_schedule.items():
            family.add_metric([name, entry["task"]], float(counts.get(name, 0)))
        yield family


def _schedule_of(value: Any, app: Celery) -> BaseSchedule:
    """An entry's schedule object: a number of seconds or a timedelta becomes a ``celery.schedules.schedule``."""
    result = maybe_schedule(value, app=app)
    return result if isinstance(result, BaseSchedule) else schedule(result, app=app)


def _serve(**_: Any) -> None:
    """Beat is one process: the default registry, plus the next-send collector."""
    for name, entry in _state["app"].conf.beat_schedule.items():
        metrics.BEAT_SENDS.labels(name, entry["task"])  # zero, so the first send shows in increase()
    REGISTRY.register(NextSendCollector())
    REGISTRY.register(MissedCollector())
    tracing.configure("taskfleet-beat", clients=False)
    settings = load(ObservabilitySettings)
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port, settings.metrics_addr, REGISTRY)


def _json_logs(logger: Any = None, **_: Any) -> None:
    if logger is not None and logs.json_enabled():
        logs.use_json([logger], "taskfleet-beat")
