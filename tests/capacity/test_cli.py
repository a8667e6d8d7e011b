"""``taskfleet-capacity`` end to end on the chart's values: simulate (figures, PNG), compare, recommend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from taskfleet_capacity.cli import main

from tests.chart.render import CHART

VALUES = ["--chart-values", str(CHART / "values.yaml")]
BURSTS = ["--trace", "bursts:size=40,every=1800,hours=3", "--duration", "lognormal:30:0.5", "--cold-start", "15"]
#: Without sync's 10/min rate limit, so that replicas decide the wait (test_the_rate_limit_applies_by_default).
TRACE = [*BURSTS, "--rate-limit", "none"]


def test_simulate_prints_figures_and_writes_a_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "sync.png"
    assert main(["simulate", "--queue", "sync", *VALUES, *TRACE, "--plot", str(plot), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["tasks"] == 6 * 40
    assert 0 < stats["wait_p50"] <= stats["wait_p95"] <= stats["wait_p99"] <= stats["wait_max"]
    assert stats["peak_replicas"] == 4  # the chart's maxReplicaCount for sync
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_values_file_and_set_change_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = tmp_path / "mine.yaml"
    user.write_text("queues:\n  - name: sync\n    maxReplicaCount: 8\n")
    assert main(["simulate", "--queue", "sync", *VALUES, "-f", str(user), *TRACE, "--json"]) == 0
    eight = json.loads(capsys.readouterr().out)
    assert main(["simulate", "--queue", "sync", *VALUES, "-f", str(user), "--set", "maxReplicaCount=2", *TRACE,
                 "--json"]) == 0  # fmt: skip
    two = json.loads(capsys.readouterr().out)
    assert (eight["peak_replicas"], two["peak_replicas"]) == (8, 2)
    assert eight["wait_p95"] < two["wait_p95"]


def test_compare_runs_without_and_with_deletion_cost(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["compare", "--queue", "sync", *VALUES, *TRACE, "--set", "terminationGracePeriodSeconds=60", "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert set(rows) == {"without", "with"}
    assert rows["with"]["tasks"] == rows["without"]["tasks"]


def test_recommend_returns_the_cheapest_candidate_meeting_the_objective(capsys: pytest.CaptureFixture[str]) -> None:
    grid = ["--grid", "maxReplicaCount=1,2,4,8,16", "--grid", "pollingInterval=15"]
    args = ["recommend", "--queue", "sync", *VALUES, *TRACE, *grid, "--objective", "p95<60", "--json", "--top", "9"]
    assert main(args) == 0
    candidates = json.loads(capsys.readouterr().out)
    assert len(candidates) == 4  # maxReplicaCount 1 < fallback.replicas 2: the chart refuses it
    met = [c for c in candidates if c["met"]]
    assert met and all(c["wait_p95"] < 60 for c in met)
    assert all(not c["met"] for c in candidates[len(met) :])
    assert [c["pod_seconds"] for c in met] == sorted(c["pod_seconds"] for c in met)
    slower = [c for c in candidates if not c["met"]]
    assert all(c["changes"]["maxReplicaCount"] < met[0]["changes"]["maxReplicaCount"] for c in slower)


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "taskfleet-capacity"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "recommend" in done.stdout


def test_bad_input_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--queue", "reports", *VALUES, *TRACE]) == 2
    assert "queue 'reports' is not in values.queues" in capsys.readouterr().err
    assert main(["simulate", "--queue", "sync", *VALUES, "--trace", "poisson:rate=1"]) == 2
    assert "not a file, nor steady:/bursts:/beat:" in capsys.readouterr().err


def test_the_rate_limit_applies_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--queue", "sync", *VALUES, *BURSTS]) == 0
    out = capsys.readouterr().out
    assert "rate limit 10/60 s" in out
    deferred = int(out.split("rate limit            ")[1].split(" ")[0])
    assert deferred > 0
