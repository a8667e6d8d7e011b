"""The console's one setting of its own: where a job's trace opens (its tokens are the API's)."""

from __future__ import annotations

from pydantic import Field
from taskfleet_core.settings import FromEnvironment


class ConsoleSettings(FromEnvironment):
    console_trace_url: str = Field(
        "",
        description="Trace UI URL with {trace_id}, e.g. http://localhost:16686/trace/{trace_id} (Jaeger) or a "
        "Grafana Explore link; empty: the console shows the trace id without a link",
    )
