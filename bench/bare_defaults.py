"""Bare Celery with its defaults (acks early, prefetch 4, mingle and gossip on), plus a result backend.

The backend is the only addition: the benchmark sees a job finish by its stored result, as for the others.
"""

import os

from celery import Celery

app = Celery("bare_defaults", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])


@app.task(name="bare.noop")
def noop(**kwargs):
    return {"steps": 1, "attempts": 1, "payload": kwargs.get("payload", {})}
