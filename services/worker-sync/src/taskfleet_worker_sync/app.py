"""The sync worker's Celery app: consumes ``sync``; implements the grant pipeline contracts."""

from taskfleet_core.tasks.worker import create_worker_app

app = create_worker_app("sync", ["taskfleet_worker_sync.tasks"])
