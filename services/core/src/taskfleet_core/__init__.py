"""Taskfleet core: the one place that says what the fleet is.

Settings, the queue registry, task contracts, the Celery app factory and the
async bridge live here so that the API, Beat and every worker agree on them.
"""
