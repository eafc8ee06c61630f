"""Ray Serve's replica-count rule, per deployment, in control intervals: the decision part of
:class:`~jbrl.agents.rules.autoscaler.AutoscalerPolicy` (placement lives there).

Follows Ray Serve's documented autoscaling (Ray 2.x; the default
``replica_queue_length_autoscaling_policy``):

* https://docs.ray.io/en/latest/serve/autoscaling-guide.html
* https://docs.ray.io/en/latest/serve/advanced-guides/advanced-autoscaling.html
* https://docs.ray.io/en/latest/serve/api/doc/ray.serve.config.AutoscalingConfig.html
* ``python/ray/serve/autoscaling_policy.py`` (ray-project/ray): ``_apply_scaling_factors``,
  ``_apply_delay_logic``.

The pipeline, one small step each as in Ray Serve: the average number of ongoing requests
(queued + running) over the look-back period (:class:`LookBack`); the desired number of
replicas ``total_ongoing / target_ongoing_requests`` (:func:`desired_replicas`); the smoothing
factors (:func:`apply_scaling_factors`); the bounds (:func:`apply_bounds`); the delays
(:class:`DelayState`).

Discrete time: jbrl decides once per control interval from interval averages, where Ray Serve
decides every 0.1 s from metrics pushed every 10 s. A desire seen in ``c`` consecutive interval
reports counts as ``c * interval_s`` seconds old (the report averages the whole interval), so
with the defaults (60 s intervals, 30 s upscale delay, 600 s downscale delay) a scale-up happens
at the first decision that wants it and a scale-down after 10 intervals that all want fewer
replicas; a look-back period shorter than an interval uses the last interval's average.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from jbrl.errors import InputError
from jbrl.sim.base import IntervalMetrics


@dataclass(frozen=True)
class ServeAutoscalingConfig:
    """Ray Serve's ``AutoscalingConfig`` fields that apply, with its defaults (Ray 2.32+).

    ``max_replicas`` 0 means "every worker that can host the deployment" (Ray Serve's default is
    1, i.e. no autoscaling; ``num_replicas="auto"`` sets 100, more than any jbrl fleet).
    ``upscaling_factor`` / ``downscaling_factor`` default to ``smoothing_factor`` (1.0).
    """

    target_ongoing_requests: float = 2.0
    min_replicas: int = 1
    max_replicas: int = 0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    upscaling_factor: float = 1.0
    downscaling_factor: float = 1.0
    look_back_period_s: float = 30.0

    def __post_init__(self) -> None:
        positive = {
            "target": self.target_ongoing_requests,
            "up_factor": self.upscaling_factor,
            "down_factor": self.downscaling_factor,
            "look_back": self.look_back_period_s,
        }
        for name, v in positive.items():
            if not v > 0:
                raise InputError("must be > 0", field=f"policy.{name}", value=v)
        for name, v in {
            "up_delay": self.upscale_delay_s,
            "down_delay": self.downscale_delay_s,
        }.items():
            if not v >= 0:
                raise InputError("must be >= 0 seconds", field=f"policy.{name}", value=v)
        if self.min_replicas < 1:
            raise InputError("must be >= 1", field="policy.min", value=self.min_replicas)
        if self.max_replicas and self.max_replicas < self.min_replicas:
            raise InputError(
                "must be 0 (the fleet) or >= min",
                field="policy.max",
                value=(self.min_replicas, self.max_replicas),
            )


def desired_replicas(total_ongoing: float, replicas: int, target: float) -> float:
    """Ray Serve's core rule: ``replicas * error_ratio`` with ``error_ratio = total_ongoing /
    (target * replicas)``, i.e. ``total_ongoing / target`` (a float)."""
    if replicas <= 0:
        return float(max(1, math.ceil(total_ongoing / target)))
    return replicas * (total_ongoing / (target * replicas))


def apply_scaling_factors(desired: float, replicas: int, cfg: ServeAutoscalingConfig) -> int:
    """Smoothing: move ``factor`` of the way from ``replicas`` to ``desired`` (ceiling); a
    downscale the factor would stall still removes one replica (Ray Serve's rule)."""
    if replicas <= 0:
        return math.ceil(desired)
    delta = desired - replicas
    factor = cfg.upscaling_factor if delta > 0 else cfg.downscaling_factor
    scaled = math.ceil(replicas + factor * delta - 1e-9)
    if math.ceil(desired - 1e-9) < replicas and scaled == replicas:
        scaled -= 1
    return scaled


def apply_bounds(n: int, cfg: ServeAutoscalingConfig, hostable: int) -> int:
    """Clip to ``[min_replicas, max_replicas]``; ``hostable`` is how many replicas the fleet can
    hold at most (the bound when ``max_replicas`` is 0)."""
    top = min(cfg.max_replicas, hostable) if cfg.max_replicas else hostable
    return max(cfg.min_replicas, min(n, max(top, cfg.min_replicas)))


@dataclass
class DelayState:
    """Ray Serve's delay logic for one deployment: how long (s) the current direction has been
    wanted in consecutive decisions (positive up, negative down; 0 none)."""

    wanted_s: float = 0.0

    def decide(
        self, desired: int, current: int, interval_s: float, cfg: ServeAutoscalingConfig
    ) -> int:
        """The replica count to run now: ``desired`` once its direction has been wanted for the
        delay, else ``current``. A change of direction, or no change wanted, restarts the
        clock."""
        if desired > current:
            self.wanted_s = (self.wanted_s if self.wanted_s > 0 else 0.0) + interval_s
            if self.wanted_s + 1e-6 >= cfg.upscale_delay_s:
                self.wanted_s = 0.0
                return desired
        elif desired < current:
            self.wanted_s = (self.wanted_s if self.wanted_s < 0 else 0.0) - interval_s
            if -self.wanted_s + 1e-6 >= cfg.downscale_delay_s:
                self.wanted_s = 0.0
                return desired
        else:
            self.wanted_s = 0.0
        return current


class LookBack:
    """Per-deployment ongoing-request averages of the last intervals covering
    ``look_back_period_s`` (at least the last interval), time-weighted."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._seen: deque[tuple[float, dict[str, float]]] = deque()

    def add(self, duration_s: float, ongoing: Mapping[str, float]) -> dict[str, float]:
        """Record one interval's averages; the look-back averages per deployment."""
        self._seen.append((duration_s, dict(ongoing)))
        while len(self._seen) > 1 and sum(d for d, _ in list(self._seen)[1:]) >= self.period_s:
            self._seen.popleft()
        total = sum(d for d, _ in self._seen)
        keys = set(ongoing)
        return {
            k: sum(d * o.get(k, 0.0) for d, o in self._seen) / total if total > 0 else 0.0
            for k in keys
        }


def ongoing_requests(
    m: IntervalMetrics, workers: Mapping[str, Mapping[str, float]]
) -> dict[str, float]:
    """Average ongoing requests (queued + running) per operator over the interval ``m``.

    ``workers`` maps each operator to its workers' capacities (req/s). Per worker, Little's law:
    running = busy share (batch 1), queued = served rate x mean wait, served rate = busy share x
    capacity. A backend that reports no per-worker figures (the Ray Serve backend) gives the
    operator's mean busy share x workers, or its end-of-interval backlog when larger.
    """
    out: dict[str, float] = {}
    for op, caps in workers.items():
        total = 0.0
        known = False
        for w, cap in caps.items():
            busy = m.utilization.get(w, math.nan)
            if not math.isfinite(busy):
                continue
            known = True
            wait_s = m.wait_ms.get(w, math.nan) / 1000.0
            queued = busy * cap * wait_s if math.isfinite(wait_s) else 0.0
            total += busy + queued
        if not known:
            busy = m.operator_utilization.get(op, 0.0)
            total = max(busy * len(caps), m.operator_backlog.get(op, 0.0))
        out[op] = total
    return out


def served_rate(m: IntervalMetrics, op: str, caps: Mapping[str, float]) -> float:
    """Requests per second ``op``'s workers (capacities ``caps``) served in the interval: busy
    share x capacity per worker, or the operator's mean busy share x total capacity."""
    rate = 0.0
    known = False
    for w, cap in caps.items():
        busy = m.utilization.get(w, math.nan)
        if math.isfinite(busy):
            rate += busy * cap
            known = True
    if not known:
        rate = m.operator_utilization.get(op, 0.0) * sum(caps.values())
    return rate


def stable_downscale(
    current: int,
    decided: int,
    ongoing: float,
    load: float,
    capacity: float,
    target: float,
    margin: float = 0.0,
) -> int:
    """The smallest count in ``[decided, current]`` at which the rule would not ask for more
    replicas again at the same load (jbrl's guard against Ray Serve's scale-down/scale-up
    cycle at steady load, e.g. ray-project/ray#18925).

    ``load`` (req/s) on ``capacity`` (req/s) gave ``ongoing`` requests with ``current``
    replicas. The ongoing requests at ``m`` replicas (capacity ``capacity * m / current``, same
    load) are projected with an M/M/1 queue per replica, scaled by the observed ratio of
    ``ongoing`` to the M/M/1 figure at today's utilisation (which carries the service-time
    variability). ``m`` is kept when the projection is at most ``target * m * (1 - margin)``
    (``margin``: room for the interval-to-interval noise of the measured ongoing requests).
    """
    if decided >= current or capacity <= 0:
        return current
    rho = load / capacity
    if not 0 < rho < 1:
        return current if rho >= 1 else decided
    mm1 = current * rho / (1 - rho)
    k = ongoing / mm1 if ongoing > 0 else 1.0
    for m in range(max(decided, 1), current):
        r = rho * current / m
        if r < 1 and k * m * r / (1 - r) <= target * m * (1 - margin):
            return m
    return current
