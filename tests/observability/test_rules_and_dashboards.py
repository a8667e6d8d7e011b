"""Alert rules and dashboards as code: promtool passes, every alert is unit-tested both ways,
the generated files (local stack and chart) match their sources, and the dashboards are sound.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.observability.conftest import OBSERVABILITY_DIR, infra_module
from tests.support.reference import REPO_ROOT

PROM_DIR = OBSERVABILITY_DIR / "prometheus"
CHART_FILES = REPO_ROOT / "charts" / "taskfleet" / "files" / "observability"


def promtool(*args: str, cwd: Path = PROM_DIR) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run scripts/bootstrap (make test does)")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_generated_files_match_their_sources() -> None:
    generate = infra_module("generate")
    drifted = [str(p.relative_to(REPO_ROOT)) for p, text in generate.outputs().items() if p.read_text() != text]
    assert not drifted, f"run `uv run python infra/observability/generate.py`: {drifted}"
    assert (CHART_FILES / "rules" / "taskfleet-alerts.yaml").read_text() == (PROM_DIR / "alerts.yml").read_text()


def test_promtool_checks_rules_and_config() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text())["tests"]
    firing, quiet = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = set(infra_module("rules").alert_names())
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


def test_backlog_alert_per_queue_from_the_registry() -> None:
    from taskfleet_core.tasks.queues import QUEUES

    rules = infra_module("rules")
    backlog = [r for g in rules.groups() for r in g["rules"] if r["alert"] == "TaskfleetBacklogTooOld"]
    assert sorted(r["labels"]["queue_name"] for r in backlog) == sorted(QUEUES)


def test_test_copy_of_the_rules_only_shortens_for() -> None:
    rules = infra_module("rules")
    real, fast = rules.rules_file(), rules.rules_file(for_override="0s")
    for group_real, group_fast in zip(real["groups"], fast["groups"], strict=True):
        for a, b in zip(group_real["rules"], group_fast["rules"], strict=True):
            assert (a["alert"], a["expr"], a["labels"]) == (b["alert"], b["expr"], b["labels"])
            assert b["for"] == "0s"


@pytest.mark.parametrize("name", ["taskfleet-overview.json", "taskfleet-task.json"])
def test_dashboards_are_sound(name: str) -> None:
    dashboards = infra_module("dashboards")
    board = dashboards.DASHBOARDS[name]()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    variables = {v["name"] for v in board["templating"]["list"]}
    assert "datasource" in variables
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            # Grafana's own variables only, and rate windows that follow the scrape interval
            used = {word for word in target["expr"].replace("(", " ").replace("[", " ").split() if "$" in word}
            assert "[5m]" in target["expr"] or "rate(" not in target["expr"] or "$__rate_interval" in target["expr"]
            for word in used:
                assert any(v in word for v in ("$__rate_interval", "$__range", "$queue", "$task")), word
            assert not any(v in target["expr"] for v in ("$task",)) or "task" in variables


def test_overview_covers_the_issue() -> None:
    """Per queue: waiting, oldest age, throughput, failures, runtime and wait quantiles, in-flight, replicas, KEDA."""
    dashboards = infra_module("dashboards")
    titles = {p["title"] for p in dashboards.overview()["panels"]}
    assert {
        "Waiting",
        "Oldest waiting message",
        "Throughput",
        "Failure ratio",
        "Runtime",
        "Wait (publish or ETA to start)",
        "In flight",
        "Replicas",
        "KEDA target",
        "Dead letters",
        "Rate-limit throttles",
        "Retries by reason",
        "Beat sends per entry",
        "Requests by route",
        "Latency p95 by route",
        "Server errors by route",
        "Jobs submitted",
    } <= titles


def test_every_panel_query_parses(tmp_path: Path) -> None:
    """promtool parses each query (Grafana variables filled in) as a recording rule: fast, no Prometheus."""
    from tests.observability.test_fleet_observed import grafana_to_promql

    dashboards = infra_module("dashboards")
    records = [
        {"record": f"panel:{n}", "expr": grafana_to_promql(expr)}
        for n, (_, expr, _) in enumerate(
            q for build in dashboards.DASHBOARDS.values() for q in dashboards.panel_queries(build())
        )
    ]
    (tmp_path / "panels.yml").write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": records}]}))
    result = promtool("check", "rules", "panels.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
