"""Which messages the transport files in the schedule (broker/schedule.py), without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskfleet_core.broker import keys, schedule
from taskfleet_core.reliability import housekeeping
from taskfleet_core.tasks.app import create_app


def envelope(**headers: object) -> dict:
    return {"body": "e30=", "headers": headers, "properties": {"delivery_tag": "tag-1", "delivery_info": {}}}


def test_eta_header_as_epoch_seconds() -> None:
    due = datetime(2030, 1, 1, 2, 0, tzinfo=UTC)
    assert schedule.eta_seconds(envelope(eta=due.isoformat())) == due.timestamp()
    assert schedule.eta_seconds(envelope(eta="2030-01-01T02:00:00")) == due.timestamp()  # naive: UTC, as the app
    assert schedule.eta_seconds(envelope(eta=None)) is None
    assert schedule.eta_seconds(envelope()) is None
    assert schedule.eta_seconds(envelope(eta="not a date")) is None
    assert schedule.eta_seconds({"body": ""}) is None


def test_only_an_eta_beyond_epsilon_is_delayed() -> None:
    now = 1_000.0
    assert schedule.is_delayed(now + 5, now)
    assert not schedule.is_delayed(now + schedule.EPSILON_SECONDS / 2, now)
    assert not schedule.is_delayed(now - 5, now)
    assert not schedule.is_delayed(None, now)


def test_member_is_the_task_id_else_the_delivery_tag() -> None:
    assert schedule.member_of(envelope(id="job-1")) == "job-1"
    assert schedule.member_of(envelope()) == "tag-1"


def test_schedule_keys_are_in_the_catalogue() -> None:
    assert schedule.schedule_key("email") == keys.SCHEDULED_KEY.format(queue="email") == "taskfleet:scheduled:email"
    assert schedule.messages_key("email") == "taskfleet:scheduled:email:messages"
    soon = (datetime.now(UTC) + timedelta(seconds=60)).timestamp()
    args = schedule.schedule_args("email", envelope(id="j"), "email\x06\x163", "{}", soon)
    assert args[:4] == [2, "taskfleet:scheduled:email", "taskfleet:scheduled:email:messages", "j"]
    assert float(args[4]) == soon and args[5] == "email\x06\x163\n{}"


def test_every_process_publishes_through_the_fleet_transport_and_has_the_promoter() -> None:
    for app in (create_app("api"), create_app("worker", consumer_queue="email")):
        assert app.conf.broker_transport == "taskfleet_core.broker.transport:Transport"
    assert "promote-scheduled" in housekeeping._JOBS
