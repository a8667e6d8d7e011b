"""The matching worker's Celery app: consumes ``matching``; contracts it does not implement yet are rejected clearly."""

from taskfleet_core.worker import create_worker_app

app = create_worker_app("matching", [])
