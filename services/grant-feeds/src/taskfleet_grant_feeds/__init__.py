"""Recorded grant feeds: the five source APIs replayed locally with realistic, multi-page data.

Dev-only (tests, local stack); built from ``shared/fixtures/grant_sources`` plus generated
records of the same shape. ``python -m taskfleet_grant_feeds --port 8090``.
"""
