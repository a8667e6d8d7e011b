"""Structured JSON logs, selected by ``LOG_FORMAT=json``, carrying trace and task ids.

One JSON object a line (python-json-logger), so a log pipeline can join a log line to its trace
(``trace_id``/``span_id``) and to its job (``task_id``, ``task_name``, ``queue``)
without parsing free text. ``LOG_FORMAT=text`` (the default) leaves the usual format.

Fields: ``ts``, ``level``, ``logger``, ``message``, ``service``, ``pid``; ``trace_id``/``span_id`` inside a
span; ``task_id``/``task_name``/``queue``/``retries`` inside a task; ``exception`` (formatted traceback) and
``stack_info`` when the record has them; and any ``extra=`` fields.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_task
from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

from taskfleet_core.settings import ObservabilitySettings, load

#: LogRecord attributes every line carries ...
_FIELDS = ("levelname", "name", "message", "process")
#: ... and the names they get in a JSON line (python-json-logger's ``exc_info`` is the formatted traceback).
_RENAMES = {"levelname": "level", "name": "logger", "process": "pid", "exc_info": "exception"}


def json_enabled() -> bool:
    return load(ObservabilitySettings).log_format == "json"


class JsonFormatter(_LibraryJsonFormatter):
    """python-json-logger's formatter, plus the service name, the current span's ids and the running task."""

    def __init__(self, service: str) -> None:
        super().__init__(
            _FIELDS,
            rename_fields=_RENAMES,
            static_fields={"service": service},
            reserved_attrs=[*RESERVED_ATTRS, "taskName"],
            timestamp="ts",
            json_ensure_ascii=False,
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            log_data["trace_id"] = format(context.trace_id, "032x")
            log_data["span_id"] = format(context.span_id, "016x")
        log_data |= _task_fields()


def _task_fields() -> dict[str, Any]:
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
