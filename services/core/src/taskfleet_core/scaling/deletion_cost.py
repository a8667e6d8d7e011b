"""Busy-aware scale-in: every worker keeps its pod's ``pod-deletion-cost`` equal to the work it holds.

When the HPA lowers a Deployment's replicas, the ReplicaSet controller deletes the pods with the lowest
``controller.kubernetes.io/pod-deletion-cost`` first (beta, on by default, since Kubernetes 1.22). Left alone,
every pod costs 0 and the controller often picks a busy one, which then drains for up to its grace period
while an idle pod keeps running. So each worker says what it holds: 0 when idle, else the sum over its running
tasks of ``1 + age in seconds`` (an old task has the most work to lose; int32 at most).

Patching a pod is not free at 100 pods (every pod watcher sees the update; the Kubernetes docs warn against
following a metric), so the value is only *sent* when it is worth it: on the first sample (a restarted
container may carry a stale value), when the pod turns idle or busy, and when the cost has at least doubled or
halved since it was sent (about log2 of a long task's age patches). At most one PATCH per
``DELETION_COST_MIN_INTERVAL_SECONDS`` (15 s) per pod, and one per ``REFINE_INTERVALS`` of them (60 s) for a
change that is not a turn between idle and busy; changes in between are coalesced to the latest. After a
failure the interval doubles, up to 5 minutes.

Where it runs: the worker's event-loop timer samples Celery's ``state.active_requests`` every second (in the
main process, which sees every task a prefork child accepts and finishes; task signals fire in the children)
and hands the value over without blocking; one daemon thread of the main process talks to the API server.
Tasks never wait for it; a worker that cannot patch keeps working and says so once in its log (and again
when it recovers) and in ``taskfleet_deletion_cost_patch_failures_total``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from celery import Celery
from prometheus_client import Counter, Gauge
from pydantic import Field

from taskfleet_core.scaling.pod_annotation import DELETION_COST, PatchFailed, PodAnnotator
from taskfleet_core.settings import FromEnvironment, load

log = logging.getLogger("taskfleet.deletion_cost")

INT32_MAX = 2**31 - 1
#: How often the event loop samples the running tasks (cheap: a pass over at most `concurrency` requests).
SAMPLE_SECONDS = 1.0
#: An in-between update (the pod stays busy, its cost doubled or halved) waits this many intervals: it refines
#: the ranking among busy pods, while turning idle or busy decides the victim and goes out after one.
REFINE_INTERVALS = 4
#: Longest wait between attempts while the API server refuses or cannot be reached.
MAX_BACKOFF_SECONDS = 300.0

COST = Gauge(
    "taskfleet_deletion_cost",
    "pod-deletion-cost this worker last wrote to its pod (0: idle).",
    ("queue_name",),
    multiprocess_mode="max",
)
PATCHES = Counter("taskfleet_deletion_cost_patches", "Successful PATCHes of the pod's deletion cost.", ("queue_name",))
PATCH_FAILURES = Counter(
    "taskfleet_deletion_cost_patch_failures",
    "PATCHes of the pod's deletion cost that failed, by reason (HTTP status, unreachable, tls, config).",
    ("queue_name", "reason"),
)
LAST_SUCCESS = Gauge(
    "taskfleet_deletion_cost_last_success_timestamp_seconds",
    "When the pod's deletion cost was last written (unix seconds).",
    ("queue_name",),
    multiprocess_mode="max",
)


class DeletionCostSettings(FromEnvironment):
    """Set by the chart: the switch, and the pod's own name and namespace from the downward API."""

    deletion_cost_enabled: bool = Field(False, description="Keep the pod's pod-deletion-cost annotation current")
    deletion_cost_min_interval_seconds: float = Field(
        15.0, ge=1, le=3600, description="At most one PATCH of the pod per this many seconds"
    )
    deletion_cost_kubeconfig: Path | None = Field(
        None, description="Talk to the API server named in this kubeconfig instead of the in-cluster one"
    )
    pod_name: str = Field("", description="This pod's name (downward API: metadata.name)")
    pod_namespace: str = Field("", description="This pod's namespace (downward API: metadata.namespace)")


def work_held(started: Iterable[float], now: float) -> int:
    """The cost of deleting a worker running tasks that started at ``started`` (unix seconds): 0 when idle."""
    return min(INT32_MAX, sum(1 + max(0, int(now - start)) for start in started))


def worth_sending(sent: int | None, desired: int) -> bool:
    """Whether ``desired`` differs enough from the value the pod carries (``None``: not known) to patch."""
    if sent is None:
        return True
    if desired == sent:
        return False
    if (sent == 0) != (desired == 0):
        return True  # turned idle or busy: what decides the victim
    return desired >= 2 * sent or 2 * desired <= sent


def due_at(sent: int | None, desired: int | None, ready_at: float, failing: bool, min_interval: float) -> float | None:
    """When ``desired`` may go out, or ``None`` when it is not worth a PATCH.

    ``ready_at`` is one interval after the last success (or the end of the backoff after a failure): a turn
    between idle and busy goes then, a change in between waits ``REFINE_INTERVALS`` intervals in all.
    """
    if desired is None or not worth_sending(sent, desired):
        return None
    if sent is None or failing or (sent == 0) != (desired == 0):
        return ready_at
    return ready_at + (REFINE_INTERVALS - 1) * min_interval


def running_work(now: float | None = None) -> int:
    """``work_held`` of the tasks this worker's pool runs now (call from the worker's main process)."""
    from celery.worker import state

    started = [r.time_start for r in list(state.active_requests) if r.time_start is not None]
    return work_held(started, time.time() if now is None else now)


class CostPublisher:
    """Sends the latest offered cost from its own thread, when ``worth_sending`` and the rate bound allow."""

    def __init__(
        self,
        send: Callable[[int], None],
        queue: str,
        min_interval: float,
        where: str = "",
    ) -> None:
        self._send = send
        self.queue = queue
        self.min_interval = min_interval
        self.where = where
        self._cond = threading.Condition()
        self._desired: int | None = None
        self._sent: int | None = None
        self._not_before = 0.0
        self._failures = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def offer(self, cost: int) -> None:
        """Record the current cost; never blocks on the API server."""
        with self._cond:
            if cost != self._desired:
                self._desired = cost
                self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="deletion-cost", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _due(self) -> float | None:
        return due_at(self._sent, self._desired, self._not_before, self._failures > 0, self.min_interval)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    due, now = self._due(), time.monotonic()
                    if due is not None and due <= now:
                        break
                    self._cond.wait(None if due is None else due - now)
                if self._stopped:
                    return
                value = self._desired
            assert value is not None  # _due() is None until a value is offered
            self._attempt(value)

    def _attempt(self, value: int) -> None:
        try:
            self._send(value)
        except PatchFailed as exc:
            self._failed(exc)
        except Exception as exc:  # a bug here must not end the thread: the next attempt may work
            log.exception("pod-deletion-cost: unexpected error patching %s", self.where)
            self._failed(PatchFailed("error", repr(exc)))
        else:
            self._succeeded(value)

    def _succeeded(self, value: int) -> None:
        COST.labels(self.queue).set(value)
        PATCHES.labels(self.queue).inc()
        LAST_SUCCESS.labels(self.queue).set(time.time())
        with self._cond:
            if self._sent is None or self._failures:
                log.info(
                    "pod-deletion-cost: %s %s (at most one update per %.0f s)",
                    self.where,
                    "patched again" if self._failures else "patched",
                    self.min_interval,
                )
            self._sent, self._failures = value, 0
            self._not_before = time.monotonic() + self.min_interval

    def _failed(self, exc: PatchFailed) -> None:
        PATCH_FAILURES.labels(self.queue, exc.reason).inc()
        with self._cond:
            self._failures += 1
            backoff = min(MAX_BACKOFF_SECONDS, self.min_interval * 2 ** (self._failures - 1))
            self._not_before = time.monotonic() + backoff
            if self._failures == 1:  # once per outage, not once per attempt
                log.warning(
                    "pod-deletion-cost: cannot patch %s (%s); tasks run as usual, scale-in just picks pods "
                    "without this hint; retrying with backoff up to %.0f s",
                    self.where,
                    exc,
                    MAX_BACKOFF_SECONDS,
                )


def install(app: Celery) -> None:
    """Add the sampling bootstep to a worker app when the chart enabled it and named the pod."""
    settings = load(DeletionCostSettings)
    if not settings.deletion_cost_enabled:
        return
    queue = app.conf.taskfleet_queue
    if not (settings.pod_name and settings.pod_namespace):
        log.warning("pod-deletion-cost: enabled but POD_NAME/POD_NAMESPACE are not set; not patching")
        return
    annotator = PodAnnotator(settings.pod_name, settings.pod_namespace, settings.deletion_cost_kubeconfig)
    where = f"pod {settings.pod_namespace}/{settings.pod_name}"

    from celery import bootsteps  # the probe CLI imports taskfleet_core without Celery's worker machinery

    class DeletionCostStep(bootsteps.StartStopStep):
        """Samples the running tasks from the event loop; the publisher's thread does the PATCHes."""

        requires = ("celery.worker.components:Timer", "celery.worker.components:Pool")

        def __init__(self, worker: Any, **kwargs: Any) -> None:
            super().__init__(worker, **kwargs)
            self.tref: Any = None
            self.publisher: CostPublisher | None = None

        def start(self, worker: Any) -> None:
            PATCHES.labels(queue)  # zero, so the first one shows in rate(); after multiprocess mode is on
            publisher = CostPublisher(
                lambda cost: annotator.set(DELETION_COST, str(cost)),
                queue,
                settings.deletion_cost_min_interval_seconds,
                where,
            )
            publisher.offer(running_work())
            publisher.start()  # after the pool forked its children: they must not inherit a busy thread
            self.publisher = publisher
            self.tref = worker.timer.call_repeatedly(SAMPLE_SECONDS, lambda: publisher.offer(running_work()))

        def stop(self, worker: Any) -> None:
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None
            if self.publisher is not None:
                self.publisher.stop()
                self.publisher = None

    app.steps["worker"].add(DeletionCostStep)
