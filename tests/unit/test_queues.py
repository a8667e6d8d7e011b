"""The queue registry and the worker settings table of seed 000 (with the documented departures)."""

from typing import get_args

import pytest
from kombu import Queue
from taskfleet_api.dlq import QueueName, Reason
from taskfleet_core.reliability import dlq
from taskfleet_core.tasks.app import create_app, queue_for_task
from taskfleet_core.tasks.queues import QUEUES, TASK_ROUTE_PATTERNS, visibility_timeout

from tests.support.reference import seed000

#: Where the fleet departs from seed 000's worker settings table on purpose (README, "Where we depart").
DEPARTURES = {"worker_prefetch_multiplier": 1}


def test_queue_table_matches_the_seed() -> None:
    seed = {row["name"]: row for row in seed000()["queues"]}
    assert list(QUEUES) == list(seed)
    for name, spec in QUEUES.items():
        assert spec.kombu_queue().exchange.name == seed[name]["exchange"]
        limit = seed[name]["rate_limit"]
        expected = None if limit is None else limit.replace("/minute", "/m")
        assert (str(spec.rate_limit) if spec.rate_limit else None) == expected


def test_worker_settings_match_the_seed_table_except_documented_departures() -> None:
    conf = create_app("t", consumer_queue="default").conf
    for setting, text in seed000()["worker_settings"].items():
        expected = DEPARTURES.get(setting, {"True": True, "False": False}.get(text, text))
        actual = conf[setting]
        assert str(actual) == str(expected), f"{setting}: {actual!r} vs seed {text!r}"


def test_four_queues_with_direct_exchanges_and_seed_rate_limits() -> None:
    assert list(QUEUES) == ["default", "matching", "email", "sync"]
    for spec in QUEUES.values():
        queue: Queue = spec.kombu_queue()
        assert queue.exchange.name == spec.name and queue.exchange.type == "direct"
        assert queue.routing_key == spec.name
    assert {name: str(q.rate_limit) if q.rate_limit else None for name, q in QUEUES.items()} == {
        "default": None,
        "matching": None,
        "email": "30/m",
        "sync": "10/m",
    }


def test_retry_policies_back_off_exponentially_with_jitter_and_a_cap() -> None:
    for spec in QUEUES.values():
        options = spec.retry.celery_options()
        assert options["retry_jitter"] is True
        assert 0 < options["retry_backoff"] < options["retry_backoff_max"]
        assert 0 < options["max_retries"] <= 5


@pytest.mark.parametrize("consumer", [None, "email"])
def test_worker_settings_table(consumer: str | None) -> None:
    conf = create_app("t", consumer_queue=consumer).conf
    assert conf.task_serializer == "json" and conf.result_serializer == "json"
    assert conf.accept_content == ["json"]  # pickle refused
    assert conf.result_expires == 3600
    assert conf.task_time_limit == 1800 and conf.task_soft_time_limit == 1500
    assert conf.worker_concurrency == 4
    assert conf.worker_prefetch_multiplier == 1  # seed says 4: see queues.py docstring
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.timezone == "UTC" and conf.enable_utc is True


def test_visibility_timeout_is_twice_the_hard_limit_everywhere() -> None:
    assert visibility_timeout() >= 2 * max(q.time_limit for q in QUEUES.values())
    conf = create_app("t", consumer_queue="sync").conf
    assert conf.broker_transport_options["visibility_timeout"] == visibility_timeout()
    assert conf.result_backend_transport_options["visibility_timeout"] == visibility_timeout()
    assert conf.visibility_timeout == visibility_timeout()


def test_each_worker_keeps_its_own_unacked_keys() -> None:
    keys = {create_app("t", consumer_queue=q).conf.broker_transport_options["unacked_index_key"] for q in QUEUES}
    assert keys == {f"unacked_index:{q}" for q in QUEUES}


def test_seed_route_patterns_for_uncontracted_names() -> None:
    assert set(TASK_ROUTE_PATTERNS.values()) <= set(QUEUES)
    assert queue_for_task("matching.something_new") == "matching"
    assert queue_for_task("email.something_new") == "email"
    assert queue_for_task("pipeline.something_new") == "sync"
    assert queue_for_task("unrouted.task") == "default"


def test_the_apis_literal_types_follow_the_registry() -> None:
    assert get_args(QueueName) == tuple(QUEUES)
    assert get_args(Reason) == dlq.REASONS
