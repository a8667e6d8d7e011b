"""The sync worker's Celery app: consumes ``sync``; contracts it does not implement yet are rejected clearly."""

from taskfleet_core.worker import create_worker_app

app = create_worker_app("sync", [])
