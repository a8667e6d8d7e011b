"""The discrete-event model of one queue: arrivals, KEDA, the HPA, the ReplicaSet controller and the workers.

What each part does, and where it comes from:

* **Broker.** One FIFO list. The scaling metric is the chart's ``scalingModifiers`` formula: waiting (list and
  priority sub-lists) + in flight (``unacked_index:<queue>``: reserved and running tasks of every pod, draining
  ones included, and the deliveries of killed pods until the reaper returns them).
* **KEDA** (every ``pollingInterval``): active when the metric exceeds the activation target; at 0 replicas an
  active queue is scaled to max(minReplicaCount, 1); at minReplicaCount 0 a queue inactive for
  ``cooldownPeriod`` since its last active poll goes to 0. Between 1 and N the HPA decides (hpa.py), every
  15 s (the controller's sync period), on the metric read at that moment (KEDA's metrics server asks the scaler
  when the HPA asks, unless useCachedMetrics).
* **Pods.** A new pod is ready after the cold start; a ready pod fetches while it holds fewer than
  concurrency x prefetchMultiplier messages. Idle consumers are served in the order they asked (Valkey serves
  blocked BRPOP clients first come, first served). A run lasts at most the queue's timeLimit.
* **Rate limit** (the registry's fleet-wide limit: email 30/min, sync 10/min): a sliding window of starts. A
  task that finds it full is deferred (reliability/ratelimit.py, tasks/fleet_task.py): republished with a
  countdown of the wait plus up to one slot's spacing, scheduled work the metric does not count until it is due.
* **Scale-in** (replicaset.py picks the victims): SIGTERM = warm shutdown: the pod stops fetching, its reserved
  messages go back to the head of the list (kombu restores them on close), running tasks drain; those still
  running when terminationGracePeriodSeconds ends are killed, and their messages come back when the reaper
  notices the lost worker (``redelivery_delay``) to run again from the start.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from taskfleet_capacity.durations import Distribution, fixed
from taskfleet_capacity.hpa import SYNC_PERIOD_SECONDS, Hpa
from taskfleet_capacity.replicaset import Ranking, victims
from taskfleet_capacity.traces import Arrival
from taskfleet_capacity.values import QueueScaling

#: How long a SIGKILLed worker's deliveries stay out of the list: the fleet's reaper returns them once the
#: worker's heartbeat key (WORKER_LOST_SECONDS, 10 s by default) has expired, checking every 2 s.
REDELIVERY_SECONDS = 12.0


@dataclass(frozen=True)
class Model:
    scaling: QueueScaling
    duration: Distribution
    cold_start: Distribution = field(default_factory=lambda: fixed(30.0))
    #: Pods carry pod-deletion-cost = the tasks they hold (the workers' busy-aware scale-in).
    deletion_cost: bool = False
    redelivery_delay: float = REDELIVERY_SECONDS
    hpa_sync_period: float = SYNC_PERIOD_SECONDS
    #: Replicas at t = 0 (None: minReplicaCount, pods ready).
    initial_replicas: int | None = None
    #: KEDA's first poll (None: a seeded random point of the first interval: the operator's polls are not in phase
    #: with the trace, e.g. with cron times on the minute).
    keda_phase: float | None = None
    seed: int = 1
    sample_every: float = 15.0
    #: Stop this long after the last arrival even if the fleet has not settled at its minimum.
    max_tail_seconds: float = 6 * 3600.0


@dataclass
class Task:
    id: int
    arrival: float
    duration: float
    start: float | None = None
    end: float | None = None
    runs: int = 0


@dataclass
class Pod:
    id: int
    created: float
    uid: float
    ready_at: float | None = None
    terminating_at: float | None = None
    exited_at: float | None = None
    running: dict[int, Task] = field(default_factory=dict)
    reserved: deque[Task] = field(default_factory=deque)

    @property
    def held(self) -> int:
        return len(self.running) + len(self.reserved)


@dataclass
class ScaleIn:
    at: float
    victims: int
    busy_victims: int
    running_at_sigterm: int


@dataclass
class Sample:
    at: float
    waiting: int
    replicas: int
    ready: int
    terminating: int
    running: int


@dataclass
class Result:
    model: Model
    tasks: list[Task]
    pods: list[Pod]
    samples: list[Sample]
    scale_ins: list[ScaleIn]
    drained: int
    interrupted: int
    restored: int
    end: float

    @property
    def waits(self) -> list[float]:
        return sorted(t.start - t.arrival for t in self.tasks if t.start is not None)

    @property
    def pod_seconds(self) -> float:
        return sum((p.exited_at if p.exited_at is not None else self.end) - p.created for p in self.pods)

    #: The longest the list got (tracked at every arrival, not only at samples).
    peak_backlog: int = 0
    #: Runs deferred by the rate limit.
    deferred: int = 0

    @property
    def drain_time(self) -> float:
        ends = [t.end for t in self.tasks if t.end is not None]
        return max(ends) - min(t.arrival for t in self.tasks) if ends else 0.0


class Simulation:
    def __init__(self, model: Model, arrivals: Sequence[Arrival]) -> None:
        self.m = model
        self.q = model.scaling
        self.rng = random.Random(model.seed)
        self.events: list[tuple[float, int, str, object]] = []
        self.seq = itertools.count()
        self.waiting: deque[Task] = deque()
        self.pods: list[Pod] = []
        self.consumers: deque[Pod] = deque()
        self.pending_redelivery = 0
        self.peak_waiting = 0
        self.deferred = 0
        self.starts: deque[float] = deque()  # the rate limit's sliding window
        self.replicas = 0
        self.last_active = 0.0
        self.hpa = Hpa(max(self.q.min_replicas, 1), self.q.max_replicas, self.q.target, self.q.behavior)
        self.samples: list[Sample] = []
        self.scale_ins: list[ScaleIn] = []
        self.drained = self.interrupted = self.restored = 0
        limit = self.q.time_limit
        self.tasks = [
            Task(i, a.at, min(a.duration if a.duration is not None else model.duration.draw(self.rng), limit))
            for i, a in enumerate(arrivals)
        ]
        self.last_arrival = max((t.arrival for t in self.tasks), default=0.0)

    # --- events -------------------------------------------------------------------------------------------------

    def at(self, when: float, kind: str, data: object = None) -> None:
        heapq.heappush(self.events, (when, next(self.seq), kind, data))

    def run(self) -> Result:
        initial = self.q.min_replicas if self.m.initial_replicas is None else self.m.initial_replicas
        for _ in range(initial):
            pod = self._new_pod(0.0)
            pod.ready_at = 0.0
            self.consumers.append(pod)
        self.replicas = initial
        for task in self.tasks:
            self.at(task.arrival, "arrival", task)
        if self.q.autoscaled:
            phase = self.m.keda_phase
            self.at(self.rng.uniform(0, self.q.polling_interval) if phase is None else phase, "keda", None)
            self.at(self.m.hpa_sync_period / 2, "hpa", None)  # the two loops are not in phase
        self.at(0.0, "sample", None)
        now = 0.0
        while self.events:
            now, _, kind, data = heapq.heappop(self.events)
            getattr(self, f"_on_{kind}")(now, data)
            if kind in ("sample", "hpa") and self._settled(now):
                break
        return Result(
            self.m, self.tasks, self.pods, self.samples, self.scale_ins, self.drained, self.interrupted,
            self.restored, now, self.peak_waiting, self.deferred,
        )  # fmt: skip

    def _settled(self, now: float) -> bool:
        if now < self.last_arrival:
            return False
        if now > self.last_arrival + self.m.max_tail_seconds:
            return True
        done = all(t.end is not None for t in self.tasks)
        floor = self.q.min_replicas
        live = [p for p in self.pods if p.exited_at is None]
        return done and self.replicas <= floor and len(live) <= floor

    def _on_arrival(self, now: float, task: Task) -> None:
        self.waiting.append(task)
        self.peak_waiting = max(self.peak_waiting, len(self.waiting))
        self._dispatch(now)

    def _on_redeliver(self, now: float, task: Task) -> None:
        self.pending_redelivery -= 1
        self.waiting.appendleft(task)
        self.peak_waiting = max(self.peak_waiting, len(self.waiting))
        self._dispatch(now)

    def _on_ready(self, now: float, pod: Pod) -> None:
        if pod.terminating_at is not None:
            return
        pod.ready_at = now
        self.consumers.append(pod)
        self._dispatch(now)

    def _on_done(self, now: float, item: tuple[Pod, Task, int]) -> None:
        pod, task, run = item
        if task.runs != run or task.id not in pod.running:
            return  # the run was killed at the end of the grace period
        del pod.running[task.id]
        task.end = now
        if pod.terminating_at is not None:
            self.drained += 1
            if not pod.running:
                pod.exited_at = now
            return
        if pod.reserved:
            self._start(now, pod, pod.reserved.popleft())
        if pod not in self.consumers:
            self.consumers.append(pod)
        self._dispatch(now)

    def _on_grace(self, now: float, pod: Pod) -> None:
        if pod.exited_at is not None:
            return
        for task in pod.running.values():
            self.interrupted += 1
            self.pending_redelivery += 1
            self.at(now + self.m.redelivery_delay, "redeliver", task)
        pod.running.clear()
        pod.exited_at = now

    def _on_keda(self, now: float, _: object) -> None:
        active = self.metric() > self.q.activation
        if active:
            self.last_active = now
            if self.replicas == 0:
                self._scale_to(now, max(self.q.min_replicas, 1))
        elif self.replicas > 0 and self.q.min_replicas == 0 and now - self.last_active >= self.q.cooldown_period:
            self._scale_to(now, 0)
        self.at(now + self.q.polling_interval, "keda", None)

    def _on_hpa(self, now: float, _: object) -> None:
        desired = self.hpa.reconcile(now, self.replicas, self.metric())
        if desired != self.replicas and self.replicas > 0:
            self._scale_to(now, desired)
        self.at(now + self.m.hpa_sync_period, "hpa", None)

    def _on_sample(self, now: float, _: object) -> None:
        live = [p for p in self.pods if p.exited_at is None]
        self.samples.append(
            Sample(
                now,
                len(self.waiting),
                self.replicas,
                sum(1 for p in live if p.ready_at is not None and p.terminating_at is None),
                sum(1 for p in live if p.terminating_at is not None),
                sum(len(p.running) for p in live),
            )
        )
        self.at(now + self.m.sample_every, "sample", None)

    # --- the fleet ----------------------------------------------------------------------------------------------

    def metric(self) -> int:
        return len(self.waiting) + sum(p.held for p in self.pods if p.exited_at is None) + self.pending_redelivery

    def _new_pod(self, now: float) -> Pod:
        pod = Pod(len(self.pods), now, self.rng.random())
        self.pods.append(pod)
        return pod

    def _scale_to(self, now: float, replicas: int) -> None:
        active = [p for p in self.pods if p.terminating_at is None and p.exited_at is None]
        self.replicas = replicas
        for _ in range(replicas - len(active)):
            pod = self._new_pod(now)
            self.at(now + self.m.cold_start.draw(self.rng), "ready", pod)
        if replicas < len(active):
            cost = (lambda pod: pod.held) if self.m.deletion_cost else None
            chosen = victims(active, len(active) - replicas, Ranking(now, cost))
            self.scale_ins.append(
                ScaleIn(now, len(chosen), sum(1 for p in chosen if p.running), sum(len(p.running) for p in chosen))
            )
            for pod in chosen:
                self._terminate(now, pod)

    def _terminate(self, now: float, pod: Pod) -> None:
        pod.terminating_at = now
        if pod in self.consumers:
            self.consumers.remove(pod)
        self.restored += len(pod.reserved)
        while pod.reserved:
            self.waiting.appendleft(pod.reserved.pop())
        self.peak_waiting = max(self.peak_waiting, len(self.waiting))
        if not pod.running:
            pod.exited_at = now
        else:
            self.at(now + self.q.grace_seconds, "grace", pod)
        self._dispatch(now)

    def _start(self, now: float, pod: Pod, task: Task) -> None:
        task.runs += 1
        if task.start is None:
            task.start = now
        pod.running[task.id] = task
        self.at(now + task.duration, "done", (pod, task, task.runs))

    def _throttled(self, now: float) -> float:
        """0 if the rate limit grants a start now (and takes the slot), else the seconds until one frees."""
        if self.q.rate_limit is None:
            return 0.0
        count, per = self.q.rate_limit
        while self.starts and self.starts[0] <= now - per:
            self.starts.popleft()
        if len(self.starts) < count:
            self.starts.append(now)
            return 0.0
        return self.starts[0] + per - now

    def _on_due(self, now: float, task: Task) -> None:
        self._on_arrival(now, task)

    def _dispatch(self, now: float) -> None:
        capacity = self.q.concurrency * self.q.prefetch_multiplier
        while self.waiting and self.consumers:
            task = self.waiting.popleft()
            wait = self._throttled(now)
            if wait > 0:
                self.deferred += 1
                count, per = self.q.rate_limit or (1, 0.0)
                self.at(now + wait + self.rng.uniform(0, per / count), "due", task)
                continue
            pod = self.consumers.popleft()
            if len(pod.running) < self.q.concurrency:
                self._start(now, pod, task)
            else:
                pod.reserved.append(task)
            if pod.held < capacity:
                self.consumers.append(pod)


def simulate(model: Model, arrivals: Sequence[Arrival]) -> Result:
    return Simulation(model, arrivals).run()
