"""What is waiting and running per queue, read straight from Valkey.

Waiting = the queue's list plus kombu's priority sub-lists; in flight = the queue's
own ``unacked_index`` (delivered, not yet acknowledged). These are the numbers
KEDA scales on, so the API shows the same ones.

Scheduled = delayed messages in the queue's schedule (``taskfleet:scheduled:<queue>``,
broker/schedule.py), not due yet: shown apart, and never scaled on (nothing can run them yet).
"""

from __future__ import annotations

from typing import Any

import redis

from taskfleet_core.broker import keys
from taskfleet_core.tasks.queues import QUEUES


def queue_depths(client: redis.Redis) -> dict[str, dict[str, Any]]:
    pipe = client.pipeline(transaction=False)
    for spec in QUEUES.values():
        for name in spec.waiting_lists():
            pipe.llen(name)
        pipe.zcard(spec.unacked_index_key)
        pipe.zcard(keys.SCHEDULED_KEY.format(queue=spec.name))
    replies = iter(pipe.execute())
    report: dict[str, dict[str, Any]] = {}
    for spec in QUEUES.values():
        by_list = {name: next(replies) for name in spec.waiting_lists()}
        report[spec.name] = {
            "waiting": sum(by_list.values()),
            "waiting_by_priority": {
                name.rsplit("\x06\x16", 1)[-1] if name != spec.name else "0": n for name, n in by_list.items()
            },
            "in_flight": next(replies),
            "scheduled": next(replies),
        }
    return report
