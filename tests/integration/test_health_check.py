"""maintenance.health_check: a structured report of broker, database, SMTP and queue depths."""

from taskfleet_core.settings import SmtpSettings
from taskfleet_data.settings import DataSettings
from taskfleet_worker_default.health import check_all

from tests.integration.helpers import submit, wait_for_job
from tests.support.ports import free_port


def test_report_from_a_real_worker(api, workers) -> None:
    workers.ensure("default")
    job = wait_for_job(api, submit(api, "maintenance.health_check"))
    report = job["result"]
    assert report["status"] == "ok"
    assert {name: check["ok"] for name, check in report["checks"].items()} == {
        "broker": True,
        "database": True,
        "smtp": True,
    }
    assert report["checks"]["database"]["detail"] == "sqlite"
    assert set(report["queues"]) == {"default", "matching", "email", "sync"}
    assert report["queues"]["default"]["in_flight"] >= 1  # itself


def test_unreachable_smtp_degrades_the_report_without_raising() -> None:
    report = check_all(None, SmtpSettings(smtp_port=free_port(), smtp_timeout_seconds=1), DataSettings())
    assert report["status"] == "degraded"
    assert report["checks"]["smtp"]["ok"] is False and report["checks"]["smtp"]["error"]
    assert report["checks"]["broker"]["ok"] is True
