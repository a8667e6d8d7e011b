"""The model's HPA against the worked examples of Kubernetes' documentation ("Horizontal Pod Autoscaling":
algorithm details, scaling policies, stabilization window, tolerance, default behavior).

Each test drives ``Hpa.reconcile`` the way the controller does: one call per sync, the replica count it returned
fed back as the next call's current count.
"""

from __future__ import annotations

from taskfleet_capacity.hpa import (
    DEFAULT_BEHAVIOR,
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Behavior,
    Hpa,
    Policy,
    Rules,
    behavior_from_spec,
    metric_replicas,
)


def steps(hpa: Hpa, start: int, metric_total: float, every: float, count: int) -> list[int]:
    """Replica counts after each of ``count`` syncs ``every`` seconds apart, the metric held constant."""
    current, out = start, []
    for i in range(count):
        current = hpa.reconcile(i * every, current, metric_total)
        out.append(current)
    return out


def test_ratio_doubles_and_halves_the_replicas() -> None:
    # "if the current metric value is 200m, and the desired value is 100m, the number of replicas will be doubled"
    assert metric_replicas(current=3, metric_total=3 * 0.200, target=0.100) == 6
    # "If the current value is instead 50m, you'll halve the number of replicas"
    assert metric_replicas(current=4, metric_total=4 * 0.050, target=0.100) == 2


def test_a_ratio_within_the_tolerance_skips_scaling() -> None:
    # "The control plane skips any scaling action if the ratio is sufficiently close to 1.0 (... 0.1 by default)"
    assert metric_replicas(current=10, metric_total=10 * 105, target=100) == 10
    assert metric_replicas(current=10, metric_total=10 * 91, target=100) == 10
    assert metric_replicas(current=10, metric_total=10 * 111, target=100) == 12  # ceil(11.1)
    assert metric_replicas(current=10, metric_total=10 * 89, target=100) == 9  # ceil(8.9)


def test_a_scale_up_tolerance_of_five_percent() -> None:
    # behavior.scaleUp.tolerance 0.05: "only consider scaling up if the memory consumption is higher than 105MiB"
    up = Rules(0, DEFAULT_SCALE_UP.policies, "Max", tolerance=0.05)
    hpa = Hpa(1, 100, target=100, behavior=Behavior(up, DEFAULT_SCALE_DOWN))
    assert hpa.reconcile(0, 10, 10 * 104) == 10
    assert hpa.reconcile(15, 10, 10 * 106) == 11  # ceil(10.6)
    assert behavior_from_spec({"scaleUp": {"tolerance": 0.05}}).scale_up.tolerance == 0.05


def test_the_policy_allowing_the_most_change_wins_while_scaling_down() -> None:
    # Pods 4 / 60 s and Percent 10 / 60 s: 80 replicas to 10 -> "during the first step 8 replicas will be
    # reduced. In the next iteration when the number of replicas is 72, 10% of the pods is 7.2 but the number is
    # rounded up to 8 ... When the number of replicas falls below 40 the first policy (Pods) is applied and 4
    # replicas will be reduced at a time."
    down = Rules(0, (Policy("Pods", 4, 60), Policy("Percent", 10, 60)))
    hpa = Hpa(1, 100, target=1, behavior=Behavior(DEFAULT_SCALE_UP, down))
    replicas = steps(hpa, 80, metric_total=10, every=60, count=14)
    assert replicas == [72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10]
    assert [a - b for a, b in zip([80, *replicas], replicas, strict=False)][:2] == [8, 8]
    below_40 = [a - b for a, b in zip(replicas, replicas[1:], strict=False) if a <= 40 and b > 10]
    assert set(below_40) == {4}


def test_a_policy_limits_the_change_within_its_period() -> None:
    # periodSeconds "indicates the length of time in the past for which the policy must hold true": after a step,
    # syncs every 15 s change nothing until the step's event is older than 60 s.
    down = Rules(0, (Policy("Pods", 4, 60), Policy("Percent", 10, 60)))
    hpa = Hpa(1, 100, target=1, behavior=Behavior(DEFAULT_SCALE_UP, down))
    assert steps(hpa, 80, metric_total=10, every=15, count=6) == [72, 72, 72, 72, 64, 64]


def test_select_policy_min_picks_the_smallest_change() -> None:
    # Percent 10 / 60 s and Pods 5 / 60 s with selectPolicy Min: "no more than 5 Pods are removed per minute"
    down = Rules(0, (Policy("Percent", 10, 60), Policy("Pods", 5, 60)), "Min")
    hpa = Hpa(1, 200, target=1, behavior=Behavior(DEFAULT_SCALE_UP, down))
    assert hpa.reconcile(0, 100, 10) == 95  # 10 % would be 10 pods; 5 is the smaller change
    hpa = Hpa(1, 200, target=1, behavior=Behavior(DEFAULT_SCALE_UP, down))
    assert hpa.reconcile(0, 30, 10) == 27  # 10 % of 30 (3 pods) is now the smaller change


def test_select_policy_disabled_never_scales_down() -> None:
    down = Rules(0, DEFAULT_SCALE_DOWN.policies, "Disabled")
    hpa = Hpa(1, 10, target=1, behavior=Behavior(DEFAULT_SCALE_UP, down))
    assert steps(hpa, 8, metric_total=1, every=15, count=40) == [8] * 40


def test_default_scale_up_adds_four_pods_or_doubles_every_15_seconds() -> None:
    # Default behavior: "4 pods or a 100% of the currently running replicas may at most be added every 15 seconds"
    hpa = Hpa(1, 100, target=1, behavior=DEFAULT_BEHAVIOR)
    assert steps(hpa, 1, metric_total=100, every=15, count=7) == [5, 10, 20, 40, 80, 100, 100]


def test_default_scale_down_uses_the_highest_recommendation_of_300_seconds() -> None:
    # "all desired states from the past 5 minutes will be considered": a load that vanishes keeps 10 replicas for
    # 300 s, then the 100 % policy lets the count fall to the new recommendation at once.
    hpa = Hpa(1, 100, target=1, behavior=DEFAULT_BEHAVIOR)
    assert hpa.reconcile(0, 10, 10) == 10
    replicas = [hpa.reconcile(t, 10, 2) for t in range(15, 300, 15)]
    assert replicas == [10] * len(replicas)
    assert hpa.reconcile(300, 10, 2) == 2  # the t=0 recommendation (10) is now outside the window


def test_a_custom_downscale_window_of_one_minute() -> None:
    # "To provide a custom downscale stabilization window of 1 minute": stabilizationWindowSeconds: 60
    behavior = behavior_from_spec({"scaleDown": {"stabilizationWindowSeconds": 60}})
    assert behavior.scale_down.policies == DEFAULT_SCALE_DOWN.policies
    hpa = Hpa(1, 100, target=1, behavior=behavior)
    current = hpa.reconcile(0, 6, 6)
    for t in (15, 30, 45, 60):
        current = hpa.reconcile(t, current, 3)
        assert current == (6 if t < 60 else 3)


def test_the_hpa_rests_at_zero_and_clamps_to_its_bounds() -> None:
    # "If the target's desired replica count is set to 0, and the HPA's minimum replica count is greater than 0,
    # the HPA stops adjusting the target" (KEDA owns 0 <-> 1).
    hpa = Hpa(1, 4, target=4)
    assert hpa.reconcile(0, 0, 100) == 0
    assert hpa.reconcile(15, 6, 100) == 4  # above maxReplicas: straight to the maximum
    assert Hpa(2, 4, target=4).reconcile(0, 1, 0) == 2  # below minReplicas: straight to the minimum
