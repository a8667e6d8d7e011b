"""Structured JSON logs, selected by ``LOG_FORMAT=json``, carrying trace and task ids.

One JSON object a line, so a log pipeline can join a log line to its trace
(``trace_id``/``span_id``) and to its job (``task_id``, ``task_name``, ``queue``)
without parsing free text. ``LOG_FORMAT=text`` (the default) leaves the usual format.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

#: Fields of a LogRecord that are not user extras.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def json_enabled() -> bool:
    from taskfleet_core.settings import ObservabilitySettings, load

    return load(ObservabilitySettings).log_format == "json"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "pid": record.process,
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        entry |= _task_fields()
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _task_fields() -> dict[str, Any]:
    from celery import current_task

    task = current_task
    if not task or not task.request or task.request.id is None or task.request.called_directly:
        return {}
    info = getattr(task.request, "delivery_info", None) or {}
    return {
        "task_id": task.request.id,
        "task_name": task.name,
        "queue": info.get("routing_key") or getattr(task, "queue", None),
        "retries": task.request.retries or 0,
    }


def use_json(loggers: list[logging.Logger], service: str) -> None:
    """Give every handler of ``loggers`` the JSON formatter."""
    formatter = JsonFormatter(service)
    for logger in loggers:
        for handler in logger.handlers:
            handler.setFormatter(formatter)


def configure(service: str, extra_loggers: tuple[str, ...] = ()) -> None:
    """Switch this process to JSON logs when ``LOG_FORMAT=json`` (root plus ``extra_loggers``)."""
    if not json_enabled():
        return
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    use_json([root, *(logging.getLogger(name) for name in extra_loggers)], service)
