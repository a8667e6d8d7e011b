"""The console's audit log: every replay and purge (done or refused), with the acting token's fingerprint.

Logger ``taskfleet.audit`` at INFO. With ``LOG_FORMAT=json`` it goes through the root handler as JSON like every
other line; without any logging configured (uvicorn configures only its own loggers), it still goes to stderr,
so an audit line is never dropped for want of a handler.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("taskfleet.audit")
log.setLevel(logging.INFO)


def record(message: str, *args: Any) -> None:
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.info(message, *args)
