"""Validated, not assumed: a burst of canary jobs into a real worker of 1, 2 and 4 processes (real valkey-server,
real Celery prefork worker), measured drain time and wait percentiles against the simulator's prediction for
the same publish times: within 15 % (docs/capacity.md has the table for larger bursts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.capacity.fleet_burst import run_burst
from tests.support.valkey_server import ValkeyServer

#: 12 jobs of 0.5 s: three rounds at 4 processes, twelve at 1; the drain is 1.5 to 6 s.
JOBS, SLEEP = 12, 0.5
#: The issue's target.
TOLERANCE = 0.15
#: Below this a difference is timer and pub/sub jitter, not a modelling error (a wait of ~0 s has no 15 %).
FLOOR_SECONDS = 0.05


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_prediction_of_a_burst_is_within_15_percent(
    redis_server: ValkeyServer, fleet_env: dict[str, str], tmp_path: Path
) -> None:
    for concurrency in (1, 2, 4):
        predicted, measured = run_burst(redis_server.url, fleet_env, tmp_path, concurrency, JOBS, SLEEP)
        for figure in ("drain", "p50", "p95", "p99"):
            pred, meas = getattr(predicted, figure), getattr(measured, figure)
            assert abs(pred - meas) <= max(TOLERANCE * meas, FLOOR_SECONDS), (
                f"{concurrency} processes, {figure}: predicted {pred:.2f} s, measured {meas:.2f} s"
            )
        # The burst really queued: with K processes the last job waited for ceil(N / K) - 1 rounds.
        assert measured.drain >= (JOBS / concurrency) * SLEEP
