"""The HPA controller's decisions, after kubernetes/pkg/controller/podautoscaler/horizontal.go.

Given the replica count the metrics ask for, `HpaController.decide` returns what the
controller writes to the Deployment's scale, keeping the controller's memory between syncs:
the recommendations (stabilization windows) and the scale events (policy periods).
Times are seconds on the simulation clock, and every stamp is a sync instant. A stamp t is
inside a window (or a policy period) ending at `now` only when t > now - window: upstream
compares wall-clock stamps, and a real HPA's syncs are queued one period after the previous
sync *ended*, so n intervals last slightly more than n periods and a stamp taken exactly one
window earlier on the sync grid has always left it (`Before(cutoff)`), for every check alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from surge.api.simulation import parse_quantity
from surge.simulate.errors import SimulationError

Select = Literal["Max", "Min", "Disabled"]


@dataclass(slots=True)
class ScaleEvent:
    """timestampedScaleEvent: one entry of the controller's scaleUpEvents / scaleDownEvents."""

    t: float
    change: int
    """Replicas added (scale-up list) or removed (scale-down list)."""
    outdated: bool = False
    """Set by markScaleEventsOutdated; the flag only marks the slot as reusable: the event
    still counts in every period it falls in (getReplicasChangePerPeriod reads the time)."""


Events = list[ScaleEvent]

# pkg/apis/autoscaling/v2/defaults.go and the legacy limits in horizontal.go.
SCALE_UP_PODS, SCALE_UP_PERCENT, SCALE_UP_PERIOD_S = 4, 100, 15
SCALE_DOWN_PERCENT, SCALE_DOWN_PERIOD_S = 100, 15
LEGACY_SCALE_UP_FACTOR, LEGACY_SCALE_UP_MINIMUM = 2.0, 4.0


@dataclass(frozen=True, slots=True)
class Policy:
    type: Literal["Pods", "Percent"]
    value: int
    period_s: int


@dataclass(frozen=True, slots=True)
class Rules:
    """autoscaling/v2 HPAScalingRules after defaulting."""

    window_s: float
    select: Select
    policies: tuple[Policy, ...]
    tolerance: float | None = None
    """HPAConfigurableTolerance (1.33+); None: --horizontal-pod-autoscaler-tolerance."""


@dataclass(frozen=True, slots=True)
class Behavior:
    up: Rules
    down: Rules


def _rules(raw: Any, where: str, default: Rules) -> Rules:
    """copyHPAScalingRules over the defaults: every field the user set wins, whole."""
    if raw is None:
        return default
    if not isinstance(raw, dict):
        raise SimulationError(f"{where}: expected a mapping (HPAScalingRules)")
    unknown = set(raw) - {"stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"}
    if unknown:
        raise SimulationError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; remove them"
        )
    window = raw.get("stabilizationWindowSeconds", default.window_s)
    if "stabilizationWindowSeconds" in raw and (
        not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= 3600
    ):
        raise SimulationError(
            f"{where}.stabilizationWindowSeconds: {window!r} must be a whole number 0..3600"
        )
    select = raw.get("selectPolicy", default.select)
    if select not in ("Max", "Min", "Disabled"):
        raise SimulationError(f"{where}.selectPolicy: {select!r}; use Max, Min or Disabled")
    policies = default.policies
    if "policies" in raw:
        if not isinstance(raw["policies"], list) or not raw["policies"]:
            raise SimulationError(f"{where}.policies: needs at least one policy")
        policies = tuple(
            _policy(p, f"{where}.policies[{i}]") for i, p in enumerate(raw["policies"])
        )
    tolerance = default.tolerance
    if "tolerance" in raw:
        try:
            tolerance = parse_quantity(raw["tolerance"])
        except ValueError as exc:
            raise SimulationError(f"{where}.tolerance: {exc}") from None
    return Rules(float(window), select, policies, tolerance)


def _policy(raw: Any, where: str) -> Policy:
    if not isinstance(raw, dict) or set(raw) != {"type", "value", "periodSeconds"}:
        raise SimulationError(f"{where}: write it as {{type: Pods|Percent, value, periodSeconds}}")
    kind, value, period = raw["type"], raw["value"], raw["periodSeconds"]
    if kind not in ("Pods", "Percent"):
        raise SimulationError(f"{where}.type: {kind!r}; use Pods or Percent")
    if not isinstance(value, int) or value <= 0:
        raise SimulationError(f"{where}.value: {value!r} must be a whole number above 0")
    if not isinstance(period, int) or not 0 < period <= 1800:
        raise SimulationError(f"{where}.periodSeconds: {period!r} must be 1..1800")
    return Policy(kind, value, period)


def parse_behavior(raw: Any, where: str, downscale_window_s: float) -> Behavior | None:
    """SetDefaults_HorizontalPodAutoscalerBehavior (GenerateHPAScaleUpRules /
    GenerateHPAScaleDownRules) plus maybeInitScaleDownStabilizationWindow: an unset
    scale-down window takes the controller's --horizontal-pod-autoscaler-downscale-stabilization.
    None (no behavior at all) keeps the controller's legacy path."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"scaleUp", "scaleDown"}:
        raise SimulationError(f"{where}: expected a mapping with scaleUp and/or scaleDown")
    up_default = Rules(
        0.0,
        "Max",
        (
            Policy("Pods", SCALE_UP_PODS, SCALE_UP_PERIOD_S),
            Policy("Percent", SCALE_UP_PERCENT, SCALE_UP_PERIOD_S),
        ),
    )
    down_default = Rules(
        downscale_window_s, "Max", (Policy("Percent", SCALE_DOWN_PERCENT, SCALE_DOWN_PERIOD_S),)
    )
    return Behavior(
        _rules(raw.get("scaleUp"), f"{where}.scaleUp", up_default),
        _rules(raw.get("scaleDown"), f"{where}.scaleDown", down_default),
    )


def scale_up_limit(current: int, added: Events, removed: Events, rules: Rules, now: float) -> int:
    """calculateScaleUpLimitWithScalingRules: per policy, the replicas at the start of its
    period plus what the policy allows; Max takes the largest proposal, Min the smallest."""
    if rules.select == "Disabled":
        return current
    best: int | None = None
    for p in rules.policies:
        start = current - _changed(added, p.period_s, now) + _changed(removed, p.period_s, now)
        # Percent rounds up, or a small deployment could never grow.
        grow = math.ceil(start * (1 + p.value / 100))
        proposed = start + p.value if p.type == "Pods" else grow
        if best is None:
            best = proposed
        else:
            best = max(best, proposed) if rules.select == "Max" else min(best, proposed)
    return current if best is None else best


def scale_down_limit(current: int, added: Events, removed: Events, rules: Rules, now: float) -> int:
    """calculateScaleDownLimitWithBehaviors: Max (the biggest change) is the lowest count."""
    if rules.select == "Disabled":
        return current
    best: int | None = None
    for p in rules.policies:
        start = current - _changed(added, p.period_s, now) + _changed(removed, p.period_s, now)
        # Percent truncates: int32(float64(...)).
        shrink = int(start * (1 - p.value / 100))
        proposed = start - p.value if p.type == "Pods" else shrink
        if best is None:
            best = proposed
        else:
            best = min(best, proposed) if rules.select == "Max" else max(best, proposed)
    return current if best is None else best


def _changed(events: Events, period_s: float, now: float) -> int:
    """getReplicasChangePerPeriod."""
    cutoff = now - period_s
    return sum(e.change for e in events if e.t > cutoff)


class HpaController:
    """One HPA's controller state, across syncs (the controller keys it by HPA)."""

    def __init__(
        self,
        min_replicas: int,
        max_replicas: int,
        behavior: Behavior | None,
        legacy_window_s: float,
    ) -> None:
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.behavior = behavior
        self.legacy_window_s = legacy_window_s
        self.recommendations: list[tuple[float, int]] = []
        self.up_events: Events = []
        self.down_events: Events = []

    def decide(self, now: float, current: int, metric_desired: int | None) -> int:
        """reconcileAutoscaler: the replicas to write, given the scale's spec.replicas and
        the metrics' proposal (`combine_proposals`); None when upstream's
        computeReplicasForMetrics errors out, which leaves the scale alone.

        recordInitialRecommendation: an HPA's first sync records the current count as a
        recommendation before anything else, so a Deployment that starts above what the
        load needs holds its count for one full scale-down window, with or without a
        behavior."""
        if not self.recommendations:
            self.recommendations.append((now, current))
        if current > self.max_replicas:
            desired = self.max_replicas
        elif current < self.min_replicas:
            desired = self.min_replicas
        elif metric_desired is None:
            return current
        elif self.behavior is None:
            desired = self._normalize_legacy(now, current, metric_desired)
        else:
            desired = self._normalize_with_behaviors(now, current, metric_desired)
        if desired != current:
            self._store_scale_event(now, current, desired)
        return desired

    def disabled(self, now: float) -> None:
        """A sync at 0 replicas with minReplicas above 0 (KEDA's HPA once KEDA scaled to 0):
        reconcileAutoscaler records the initial recommendation (recordInitialRecommendation
        runs before the check), then sets ScalingDisabled and writes nothing."""
        if not self.recommendations:
            self.recommendations.append((now, 0))

    # -- no behavior: normalizeDesiredReplicas ---------------------------------------------

    def _normalize_legacy(self, now: float, current: int, desired: int) -> int:
        """stabilizeRecommendation (the highest recommendation of the downscale window),
        then convertDesiredReplicasWithRules (at most max(2 × current, 4) up, min/max).
        Upstream keeps a sample unless `timestamp.Before(cutoff)`; on the real, drifting
        sync clock a sample one window back on the grid is always before it (module doc)."""
        cutoff = now - self.legacy_window_s
        stabilized = desired
        old = -1
        for i, (t, rec) in enumerate(self.recommendations):
            if t <= cutoff:
                old = i
            elif rec > stabilized:
                stabilized = rec
        self._record(old, now, desired)
        up_limit = int(max(LEGACY_SCALE_UP_FACTOR * current, LEGACY_SCALE_UP_MINIMUM))
        highest = min(self.max_replicas, up_limit)
        if stabilized < self.min_replicas:
            return self.min_replicas
        return min(stabilized, highest)

    # -- behavior: normalizeDesiredReplicasWithBehaviors -----------------------------------

    def _normalize_with_behaviors(self, now: float, current: int, desired: int) -> int:
        assert self.behavior is not None
        stabilized = self._stabilize(now, current, desired, self.behavior)
        return self._rate_limited(now, current, stabilized, self.behavior)

    def _stabilize(self, now: float, current: int, desired: int, b: Behavior) -> int:
        """stabilizeRecommendationWithBehaviors: scale up no higher than the lowest
        recommendation of the scale-up window, down no lower than the highest of the
        scale-down window; the raw recommendation is recorded (reusing one stale slot)."""
        up_cutoff, down_cutoff = now - b.up.window_s, now - b.down.window_s
        up_rec = down_rec = desired
        old = -1
        for i, (t, rec) in enumerate(self.recommendations):
            if t > up_cutoff:
                up_rec = min(up_rec, rec)
            if t > down_cutoff:
                down_rec = max(down_rec, rec)
            if t <= up_cutoff and t <= down_cutoff:  # Before both cutoffs (module doc)
                old = i
        recommendation = max(current, up_rec)
        recommendation = min(recommendation, down_rec)
        self._record(old, now, desired)
        return recommendation

    def _rate_limited(self, now: float, current: int, desired: int, b: Behavior) -> int:
        """convertDesiredReplicasWithBehaviorRate: the policies' limit, then min/max."""
        if desired > current:
            limit = scale_up_limit(current, self.up_events, self.down_events, b.up, now)
            highest = min(self.max_replicas, max(limit, current))
            return min(desired, highest)
        if desired < current:
            limit = scale_down_limit(current, self.up_events, self.down_events, b.down, now)
            lowest = max(self.min_replicas, min(limit, current))
            return max(desired, lowest)
        return desired

    def _record(self, old: int, now: float, desired: int) -> None:
        if old >= 0:
            self.recommendations[old] = (now, desired)
        else:
            self.recommendations.append((now, desired))

    def _store_scale_event(self, now: float, before: int, after: int) -> None:
        """storeScaleEvent: only with a behavior. markScaleEventsOutdated flags the events
        older than the longest policy period of their direction; the new event then takes
        the slot of the LAST flagged one (or is appended). The other flagged events stay and
        still count, e.g. for the opposite direction's longer period."""
        if self.behavior is None:
            return
        if after > before:
            rules, events, change = self.behavior.up, self.up_events, after - before
        else:
            rules, events, change = self.behavior.down, self.down_events, before - after
        longest = max((p.period_s for p in rules.policies), default=0)
        last = -1
        for i, e in enumerate(events):
            if e.t <= now - longest:  # Before(cutoff) on the drifting clock (module doc)
                e.outdated = True
            if e.outdated:
                last = i
        if last >= 0:
            events[last] = ScaleEvent(now, change)
        else:
            events.append(ScaleEvent(now, change))


def combine_proposals(proposals: list[int | None], current: int) -> int | None:
    """computeReplicasForMetrics: the largest proposal of the metrics that could be
    computed (None: the metric errored out). None, so no scaling and no recommendation
    recorded, when every metric failed, or when one failed and the others would scale
    down: an invalid metric blocks a scale-down, never a scale-up."""
    valid = [p for p in proposals if p is not None]
    if not valid:
        return None
    best = max(valid)
    if len(valid) < len(proposals) and best < current:
        return None
    return best
