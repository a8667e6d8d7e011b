"""The five grant source adapters: each pages through its API and normalises records to the grant model."""

from __future__ import annotations

from taskfleet_worker_sync.sources.base import SourceAdapter
from taskfleet_worker_sync.sources.cordis import CordisAdapter
from taskfleet_worker_sync.sources.eu_portal import EuPortalAdapter
from taskfleet_worker_sync.sources.gcf import GcfAdapter
from taskfleet_worker_sync.sources.iati import IatiAdapter
from taskfleet_worker_sync.sources.world_bank import WorldBankAdapter

ADAPTERS: dict[str, type[SourceAdapter]] = {
    "cordis": CordisAdapter,
    "eu_portal": EuPortalAdapter,
    "iati": IatiAdapter,
    "gcf": GcfAdapter,
    "world_bank": WorldBankAdapter,
}

__all__ = ["ADAPTERS", "SourceAdapter"]
