"""``python -m taskfleet_queue_exporter``: serve the queue metrics on ``METRICS_PORT``."""

from taskfleet_queue_exporter.exporter import main

main()
