"""A worker service: one queue, its own task modules, nothing else.

``create_worker_app("email", ["taskfleet_worker_email.tasks"])`` builds the app,
imports the modules that implement the queue's contracts, and registers a
rejecting placeholder for every contract of the queue not implemented yet, so
such a message fails with a clear reason instead of vanishing.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence

from celery import Celery
from celery.signals import celeryd_after_setup

from taskfleet_core.broker.client import client
from taskfleet_core.observability import probes
from taskfleet_core.observability import worker as worker_observability
from taskfleet_core.reliability import housekeeping
from taskfleet_core.reliability import reaper as _reaper  # noqa: F401  (registers its housekeeping job)
from taskfleet_core.scaling import deletion_cost
from taskfleet_core.settings import ObservabilitySettings, load
from taskfleet_core.tasks.app import create_app
from taskfleet_core.tasks.contracts import TaskContract, contracts_of_queue
from taskfleet_core.tasks.errors import ContractNotImplemented
from taskfleet_core.tasks.fleet_task import task_options

log = logging.getLogger("taskfleet.worker")

#: Celery features a fleet worker switches off (see ``run_worker``).
FLEET_WORKER_OPTIONS = ("--without-mingle", "--without-gossip", "--without-heartbeat")


def _register_placeholder(app: Celery, contract: TaskContract) -> None:
    def not_implemented(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        message = (
            f"rejecting {contract.name} (id {self.request.id}): the contract is declared for queue "
            f"{contract.queue!r} but this worker does not implement it yet"
        )
        log.error(message)
        raise ContractNotImplemented(message)

    options = task_options(contract) | {"max_retries": 0, "contract": contract}
    app.task(**options)(not_implemented)


def create_worker_app(queue: str, task_modules: Sequence[str]) -> Celery:
    app = create_app(f"taskfleet-worker-{queue}", consumer_queue=queue)
    worker_observability.instrument(app, queue)  # metrics, traces, JSON logs; before the task modules load
    for module in task_modules:
        importlib.import_module(module)
    app.finalize(auto=True)

    contracts = contracts_of_queue(queue)
    implemented = sorted(c.name for c in contracts if c.name in app.tasks)
    missing = sorted(c.name for c in contracts if c.name not in app.tasks)
    for contract in contracts:
        if contract.name in missing:
            _register_placeholder(app, contract)
    app.conf.taskfleet_queue = queue
    app.conf.taskfleet_implemented = implemented
    app.conf.taskfleet_missing = missing
    probes.install(app)  # heartbeat + ready files for the Kubernetes probes
    housekeeping.install_worker(app, client)  # promote due delayed work, return dead workers' messages
    deletion_cost.install(app)  # busy pods ask the ReplicaSet controller to delete idle ones first

    @celeryd_after_setup.connect(weak=False)
    def _announce(sender, instance, conf, **_):  # type: ignore[no-untyped-def]
        log.info("queue %s: implements %s", queue, ", ".join(implemented) or "nothing")
        if missing:
            log.warning("queue %s: not implemented yet (messages are rejected): %s", queue, ", ".join(missing))

    return app


def run_worker(app: Celery, argv: Sequence[str] | None = None) -> None:
    """Start the worker in this process (PID 1 in a container, so it receives SIGTERM itself).

    Extra command-line arguments (``--concurrency 8``, ``--pool solo``) are passed to Celery.

    Without mingle, gossip and event heartbeats (``FLEET_WORKER_OPTIONS``): the fleet uses none of them. Mingle
    makes every starting worker wait about a second for its peers' revoked lists, which the fleet keeps in
    Valkey instead (``taskfleet:revoked:<id>``, checked before each run); gossip and heartbeats feed event
    monitors the fleet does not run (task events are off; liveness is the probe files and the Valkey
    heartbeat). Remote control (``inspect``, revoke broadcasts) stays on.
    """
    queue = app.conf.taskfleet_queue
    settings = load(ObservabilitySettings)
    extra = list(sys.argv[1:] if argv is None else argv)
    base = ["worker", "--queues", queue, "--hostname", f"{queue}@%h", "--loglevel", settings.log_level]
    app.worker_main([*base, *FLEET_WORKER_OPTIONS, *extra])
