"""The matching worker's Celery app: consumes ``matching`` and knows only its own tasks."""

from taskfleet_core.tasks.worker import create_worker_app

app = create_worker_app("matching", ["taskfleet_worker_matching.tasks"])
