"""The HorizontalPodAutoscaler controller for one AverageValue external metric, as kube-controller-manager runs it.

Follows Kubernetes' "Algorithm details" and "Configurable scaling behavior" documentation and the controller it
describes (pkg/controller/podautoscaler/horizontal.go, replica_calculator.go):

* desired = ceil(metricTotal / targetAverageValue), i.e. ceil(current * metric / target), unless the usage ratio
  metricTotal / (target * current) is within the tolerance of 1.0 (0.1 by default): then no change;
* the recommendation is stabilised: the highest recommendation of the scale-down window and the lowest of the
  scale-up window bound it (both windows include the new recommendation);
* then rate-limited by the policies: each policy allows a change relative to the replica count at the start of
  its period (current minus what was added plus what was removed within periodSeconds); selectPolicy Max picks
  the policy allowing the largest change, Min the smallest, Disabled none; Percent rounds up on scale-up and
  truncates the remaining count on scale-down;
* clamped to [minReplicas, maxReplicas]; at 0 replicas the HPA does nothing (KEDA owns 0 <-> 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: kube-controller-manager's --horizontal-pod-autoscaler-sync-period default.
SYNC_PERIOD_SECONDS = 15.0
#: --horizontal-pod-autoscaler-tolerance default.
TOLERANCE = 0.1


@dataclass(frozen=True)
class Policy:
    """One HPAScalingPolicy: ``type`` is "Pods" or "Percent"."""

    type: str
    value: int
    period_seconds: int

    def __post_init__(self) -> None:
        if self.type not in ("Pods", "Percent"):
            raise ValueError(f"policy type must be Pods or Percent, not {self.type!r}")
        if self.value <= 0 or not 0 < self.period_seconds <= 1800:
            raise ValueError(f"policy {self}: value > 0 and 0 < periodSeconds <= 1800")


@dataclass(frozen=True)
class Rules:
    """HPAScalingRules of one direction; ``tolerance`` None means the controller's default."""

    stabilization_window_seconds: int
    policies: tuple[Policy, ...]
    select_policy: str = "Max"
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.select_policy not in ("Max", "Min", "Disabled"):
            raise ValueError(f"selectPolicy must be Max, Min or Disabled, not {self.select_policy!r}")


@dataclass(frozen=True)
class Behavior:
    scale_up: Rules
    scale_down: Rules


#: The defaults of pkg/apis/autoscaling/v2/defaults.go (the "Default behavior" block of the documentation).
DEFAULT_SCALE_UP = Rules(0, (Policy("Percent", 100, 15), Policy("Pods", 4, 15)), "Max")
DEFAULT_SCALE_DOWN = Rules(300, (Policy("Percent", 100, 15),), "Max")
DEFAULT_BEHAVIOR = Behavior(DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN)


def rules_from_spec(spec: dict[str, object] | None, default: Rules) -> Rules:
    """An HPAScalingRules object (Kubernetes field names) with the documented per-field defaults."""
    if not spec:
        return default
    raw_policies = spec.get("policies")
    policies = default.policies
    if isinstance(raw_policies, list) and raw_policies:
        policies = tuple(Policy(str(p["type"]), int(p["value"]), int(p["periodSeconds"])) for p in raw_policies)
    window = spec.get("stabilizationWindowSeconds", default.stabilization_window_seconds)
    tolerance = spec.get("tolerance")
    return Rules(
        int(str(window)),
        policies,
        str(spec.get("selectPolicy", default.select_policy)),
        None if tolerance is None else float(str(tolerance)),
    )


def behavior_from_spec(spec: dict[str, object] | None) -> Behavior:
    """``spec.behavior`` of an HPA (as KEDA's advanced.horizontalPodAutoscalerConfig.behavior passes it)."""
    spec = spec or {}
    up, down = spec.get("scaleUp"), spec.get("scaleDown")
    return Behavior(
        rules_from_spec(up if isinstance(up, dict) else None, DEFAULT_SCALE_UP),
        rules_from_spec(down if isinstance(down, dict) else None, DEFAULT_SCALE_DOWN),
    )


def metric_replicas(
    current: int, metric_total: float, target: float, up_tolerance: float = TOLERANCE, down_tolerance: float = TOLERANCE
) -> int:
    """Replicas for an AverageValue metric (GetExternalPerPodMetricReplicas): ceil(total / target) outside tolerance.

    In milli-units, as the external metrics API and the controller count (int64 milli-values), so 3 x 200m over
    100m is exactly 6.
    """
    usage, per_pod = round(metric_total * 1000), round(target * 1000)
    if current > 0 and 1.0 - down_tolerance <= usage / (per_pod * current) <= 1.0 + up_tolerance:
        return current
    return -(-usage // per_pod)


@dataclass
class Hpa:
    """One HPA's state across syncs: its recommendations and the scale events of the last periods."""

    min_replicas: int
    max_replicas: int
    target: float
    behavior: Behavior = DEFAULT_BEHAVIOR
    tolerance: float = TOLERANCE
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    def reconcile(self, now: float, current: int, metric_total: float) -> int:
        """The replica count the HPA sets at ``now`` (== ``current`` when it does not scale)."""
        if current == 0 and self.min_replicas != 0:
            return 0  # scaling is disabled at zero: KEDA's activation brings the target back
        if current > self.max_replicas:
            desired = self.max_replicas
        elif current < self.min_replicas:
            desired = self.min_replicas
        else:
            up_tol = self.behavior.scale_up.tolerance
            down_tol = self.behavior.scale_down.tolerance
            proposal = metric_replicas(
                current,
                metric_total,
                self.target,
                self.tolerance if up_tol is None else up_tol,
                self.tolerance if down_tol is None else down_tol,
            )
            desired = self._normalize(now, current, proposal)
        longest = max(p.period_seconds for p in (*self.behavior.scale_up.policies, *self.behavior.scale_down.policies))
        self.forget_events_before(now - longest)
        if desired != current:
            events = self.up_events if desired > current else self.down_events
            events.append((now, abs(desired - current)))
        return desired

    def _normalize(self, now: float, current: int, proposal: int) -> int:
        stabilized = self._stabilize(now, current, proposal)
        return self._rate_limit(now, current, stabilized)

    def _stabilize(self, now: float, current: int, proposal: int) -> int:
        up_cutoff = now - self.behavior.scale_up.stabilization_window_seconds
        down_cutoff = now - self.behavior.scale_down.stabilization_window_seconds
        up, down = proposal, proposal
        for at, rec in self.recommendations:
            if at > up_cutoff:
                up = min(up, rec)
            if at > down_cutoff:
                down = max(down, rec)
        keep = min(up_cutoff, down_cutoff)
        self.recommendations = [(at, rec) for at, rec in self.recommendations if at >= keep]
        self.recommendations.append((now, proposal))
        return min(max(current, up), down)

    def _changed_within(self, events: list[tuple[float, int]], now: float, period: int) -> int:
        return sum(change for at, change in events if at > now - period)

    def _period_start(self, now: float, current: int, policy: Policy) -> int:
        added = self._changed_within(self.up_events, now, policy.period_seconds)
        removed = self._changed_within(self.down_events, now, policy.period_seconds)
        return current - added + removed

    def _rate_limit(self, now: float, current: int, desired: int) -> int:
        if desired > current:
            limit = self._scale_up_limit(now, current)
            return min(desired, max(limit, current), self.max_replicas)
        if desired < current:
            limit = self._scale_down_limit(now, current)
            return max(desired, min(limit, current), self.min_replicas)
        return desired

    def _scale_up_limit(self, now: float, current: int) -> int:
        rules = self.behavior.scale_up
        if rules.select_policy == "Disabled":
            return current
        proposals = []
        for policy in rules.policies:
            start = self._period_start(now, current, policy)
            if policy.type == "Pods":
                proposals.append(start + policy.value)
            else:
                proposals.append(math.ceil(start * (1 + policy.value / 100)))
        return min(proposals) if rules.select_policy == "Min" else max(proposals)

    def _scale_down_limit(self, now: float, current: int) -> int:
        rules = self.behavior.scale_down
        if rules.select_policy == "Disabled":
            return current
        proposals = []
        for policy in rules.policies:
            start = self._period_start(now, current, policy)
            if policy.type == "Pods":
                proposals.append(start - policy.value)
            else:
                proposals.append(int(start * (1 - policy.value / 100)))
        return max(proposals) if rules.select_policy == "Min" else min(proposals)

    def forget_events_before(self, cutoff: float) -> None:
        """Drop scale events older than every policy period (they no longer limit anything)."""
        self.up_events = [(at, n) for at, n in self.up_events if at > cutoff]
        self.down_events = [(at, n) for at, n in self.down_events if at > cutoff]
