"""How the outbox relay runs: where (in the API process or not), how often it polls, how long it keeps rows."""

from __future__ import annotations

from pydantic import Field
from taskfleet_core.settings import FromEnvironment


class OutboxSettings(FromEnvironment):
    outbox_relay_enabled: bool = Field(
        True, description="Run the outbox relay inside the API process (off: run `python -m taskfleet_api.outbox`)"
    )
    outbox_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="Polling fallback: the relay looks for rows at least this often"
    )
    outbox_batch_size: int = Field(200, ge=1, le=10_000, description="Rows a relay claims and publishes at once")
    outbox_lease_seconds: float = Field(
        30.0, gt=0, description="A claim older than this is presumed dead (its relay crashed): rows are re-claimed"
    )
    outbox_retention_seconds: float = Field(3600.0, ge=0, description="Sent rows are pruned after this long")
