"""Metrics (multiprocess-safe, celery-exporter names), task signal handlers, tracing, logs and the probes."""
