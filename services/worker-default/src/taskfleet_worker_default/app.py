"""The default worker's Celery app: consumes ``default`` and knows only its own tasks."""

from taskfleet_core.tasks.worker import create_worker_app

app = create_worker_app(
    "default",
    [
        "taskfleet_worker_default.health",
        "taskfleet_worker_default.canary",
        "taskfleet_worker_default.sessions",
        "taskfleet_worker_default.vacuum",
        "taskfleet_worker_default.statistics",
    ],
)
