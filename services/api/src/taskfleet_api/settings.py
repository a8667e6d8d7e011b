"""The job API's own settings: tokens, CORS, body size, longest delay, job index bounds."""

from __future__ import annotations

from pydantic import Field
from taskfleet_core.settings import FromEnvironment


class ApiSettings(FromEnvironment):
    api_max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest accepted request body")
    api_tokens: str = Field(
        "", description="Admin bearer tokens (read + every mutation + the DLQ), comma-separated; from a Secret"
    )
    api_read_tokens: str = Field(
        "", description="Read-only bearer tokens (jobs, queues, tasks, grants, matches), comma-separated"
    )
    api_cors_origins: str = Field("", description="Comma-separated allowed CORS origins; empty: CORS off")
    api_max_delay_seconds: int = Field(
        7 * 24 * 3600,
        ge=1,
        description="Longest countdown/ETA accepted (default 7 days); later or recurring work belongs to Beat",
    )
    api_job_index_max: int = Field(
        10_000, ge=100, le=1_000_000, description="Most jobs GET /api/v1/jobs can list (oldest trimmed first)"
    )
    api_job_index_max_age_seconds: int = Field(
        25 * 3600, ge=60, description="Jobs older than this leave the listing (default: the job record's TTL)"
    )
