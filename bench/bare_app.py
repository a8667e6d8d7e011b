"""A bare Celery app with the same broker settings as the fleet, for the worker benchmark's baseline."""

import os

from celery import Celery

app = Celery("bare", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue="default",
    result_expires=3600,
)


@app.task(name="bare.noop")
def noop(**kwargs):
    return {"steps": 1, "attempts": 1, "payload": kwargs.get("payload", {})}
