"""Task contracts: one per task of seed 000's "Task Modules" tables, validating by field name."""

import re

import pytest
from pydantic import ValidationError
from taskfleet_core.tasks.app import queue_for_task
from taskfleet_core.tasks.contracts import CONTRACTS, contract_for
from taskfleet_core.tasks.queues import TASK_ROUTE_PATTERNS

from tests.support.reference import seed000


def seed_task_names() -> set[str]:
    """Every task named in seed 000's "Grant Pipeline Tasks" and "Worker Tasks" tables."""
    tables = seed000()
    return set(tables["pipeline_tasks"]).union(*tables["task_modules"].values())


def test_every_seed_task_has_a_contract() -> None:
    ours = {name.split(".", 1)[1] for name in CONTRACTS}
    assert len(seed_task_names()) == 20
    assert seed_task_names() <= ours


def test_wire_names_are_explicit_and_route_to_the_contract_queue() -> None:
    for name, contract in CONTRACTS.items():
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", name)
        assert queue_for_task(name) == contract.queue
        for pattern, queue in TASK_ROUTE_PATTERNS.items():
            if re.fullmatch(pattern.replace(".", r"\.").replace("*", ".*"), name):
                assert queue == contract.queue, f"{name}: seed pattern {pattern} says {queue}"


def test_validation_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        contract_for("email.send_email").validate((), {"to": ["not-an-address"], "subject": "x"})
    locs = {tuple(e["loc"]) for e in info.value.errors()}
    assert ("to", 0) in locs and ("text",) in locs


def test_unknown_fields_are_errors() -> None:
    with pytest.raises(ValidationError) as info:
        contract_for("matching.calculate_company_matches").validate((), {"company_id": 1, "companyid": 2})
    assert info.value.errors()[0]["loc"] == ("companyid",)


def test_positional_arguments_map_onto_fields_in_order() -> None:
    params = contract_for("matching.calculate_company_matches").validate((7, 10))
    assert params.company_id == 7 and params.top_n == 10
    with pytest.raises(ValidationError):
        contract_for("matching.calculate_company_matches").validate((7,), {"company_id": 8})
    with pytest.raises(ValidationError):
        contract_for("maintenance.health_check").validate((1,))
