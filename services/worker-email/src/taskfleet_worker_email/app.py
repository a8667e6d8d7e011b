"""The email worker's Celery app: consumes ``email`` and knows only its own tasks."""

from taskfleet_core.tasks.worker import create_worker_app

app = create_worker_app("email", ["taskfleet_worker_email.tasks", "taskfleet_worker_email.notifications"])
