"""Which pods the ReplicaSet controller deletes when ``replicas`` drops (pkg/controller/controller_utils.go,
``ActivePodsWithRanks.Less``, with PodDeletionCost and LogarithmicScaleDown on, their default since 1.22):

1. not ready before ready (a pod still starting goes first);
2. lower ``controller.kubernetes.io/pod-deletion-cost`` first (only when the pods carry it);
3. (pods doubled up on a node first: the model has no nodes);
4. ready for less time first, compared in powers of two of the nanoseconds since ready; pods in the same
   bucket are ordered by UID, i.e. at random;
5. (more restarts first: none in the model); created more recently first, again in powers of two, then by UID.

Without deletion cost a busy pod is as likely a victim as an idle one of the same age; with it (the worker
keeping its cost equal to the work it holds), the least busy go first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar


class RankedPod(Protocol):
    created: float
    ready_at: float | None
    uid: float


P = TypeVar("P", bound=RankedPod)


@dataclass(frozen=True)
class Ranking:
    """The controller's ordering at ``now``; ``cost`` gives a pod's deletion cost (None: no annotation)."""

    now: float
    cost: Callable[[RankedPod], int] | None = None

    def key(self, pod: RankedPod) -> tuple[int, int, int, float]:
        cost = self.cost(pod) if self.cost is not None else 0
        if pod.ready_at is None:
            return (0, cost, self._bucket(pod.created), pod.uid)
        return (1, cost, self._bucket(pod.ready_at), pod.uid)

    def _bucket(self, since: float) -> int:
        """logarithmicRankDiff: int(log2(nanoseconds since)), -1 for none."""
        nanoseconds = (self.now - since) * 1e9
        return int(math.log2(nanoseconds)) if nanoseconds > 0 else -1


def victims(pods: Sequence[P], count: int, ranking: Ranking) -> list[P]:
    """The ``count`` pods deleted first."""
    return sorted(pods, key=ranking.key)[:count]
