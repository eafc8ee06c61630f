"""Does a plan hold? Its predicted latency beside a simulation of it at its own load.

``jbrl plan --check-sim`` answers the question a user asks before deploying a plan without the
three steps of planning, generating a trace and simulating it: :func:`check_plan` runs ``plan``
on a constant trace at the rates it was planned for (:func:`jbrl.scenario.traces.
constant_trace`; the discrete-event simulator draws Poisson arrivals at those rates) and puts
the latency model's prediction (:func:`jbrl.planning.latency.predict_plan`) beside the
simulated SLO attainment, p50/p99 latency and $/hour.

The verdict is the simulation's: with a latency bound, the plan holds when the simulated
attainment (within the bound / completed or dropped; a drop misses) reaches the SLO's target.
Without a bound there is no attainment to check, so the plan holds when the requests that were
dropped or still queued at the end (a queue that grows without bound) are at most ``1 -
target`` of the arrivals. The run is reported in intervals of ``interval`` simulated seconds
(the progress callback's steps); the discrete-event simulator's p50/p99 are over every request
of the run (:class:`_Latencies` keeps them), the fluid model's are the completion-weighted mean
of its intervals' (:class:`jbrl.sim.rollout.RunAccumulator`; on a constant load they are the
same after the first interval).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jbrl.display import pct
from jbrl.planning.latency import predict_plan
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import constant_trace
from jbrl.sim import IntervalMetrics, SimConfig, Simulator, make_simulator, rollout
from jbrl.sim.base import latency_summary
from jbrl.sim.rollout import BaseObserver

#: defaults of ``jbrl plan --check-sim``: long enough for a p99 over tens of thousands of
#: requests at the embedded scenarios' nominal rates
DEFAULT_DURATION_S = 1800.0
DEFAULT_SIM = "des"


@dataclass(frozen=True)
class Figures:
    """SLO attainment (None without a bound), p50/p99 latency in ms (None: unbounded or no
    request finished) and $/hour, predicted or simulated."""

    attainment: float | None
    p50_ms: float | None
    p99_ms: float | None
    dollars_per_hour: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "slo_attainment": self.attainment,
            "latency_ms": {"p50": self.p50_ms, "p99": self.p99_ms},
            "dollars_per_hour": self.dollars_per_hour,
        }


@dataclass(frozen=True)
class PlanCheck:
    """The prediction and the simulation of one plan at ``rates`` (module docstring)."""

    simulator: str
    duration_s: float
    seed: int
    rates: dict[str, float]
    bound_ms: float | None
    target: float
    predicted: Figures
    simulated: Figures
    arrivals: float
    completed: float
    dropped: float
    in_flight: float
    holds: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "simulator": self.simulator,
            "duration_s": self.duration_s,
            "seed": self.seed,
            "rates": dict(self.rates),
            "bound_ms": self.bound_ms,
            "attainment_target": self.target,
            "predicted": self.predicted.to_dict(),
            "simulated": self.simulated.to_dict(),
            "arrivals": self.arrivals,
            "completed": self.completed,
            "dropped": self.dropped,
            "in_flight": self.in_flight,
            "holds": self.holds,
            "reason": self.reason,
        }


def check_plan(
    scenario: Scenario,
    plan: Plan,
    rates: Mapping[str, float],
    dollars_per_hour: float | None,
    *,
    sim: str = DEFAULT_SIM,
    duration: float = DEFAULT_DURATION_S,
    seed: int = 0,
    interval: float = 60.0,
    progress: Callable[[float, float], None] | None = None,
) -> PlanCheck:
    """Predict and simulate ``plan`` at the constant ``rates`` for ``duration`` s (module
    docstring). ``dollars_per_hour`` is the planner's cost of the plan (the predicted $/h)."""
    samples = _Latencies()
    tot = rollout(
        make_simulator(sim, SimConfig()),
        scenario,
        constant_trace(rates, duration),
        plan,
        min(interval, duration),
        seed=seed,
        duration=duration,
        design_rates=rates,
        observers=(samples,),
        progress=progress,
    ).totals
    lat = samples.summary() or tot.latency_ms
    simulated = Figures(
        _finite(tot.slo_attainment),
        _finite(lat.get("p50", math.nan)),
        _finite(lat.get("p99", math.nan)),
        tot.dollars_per_hour,
    )
    target = scenario.slo.attainment
    bound = scenario.slo.bound_s
    holds, reason = _verdict(tot.arrivals, tot.dropped_total, tot.in_flight, simulated, target)
    return PlanCheck(
        simulator=sim,
        duration_s=duration,
        seed=seed,
        rates=dict(rates),
        bound_ms=None if bound is None else bound * 1e3,
        target=target,
        predicted=_predicted(scenario, plan, rates, dollars_per_hour),
        simulated=simulated,
        arrivals=tot.arrivals,
        completed=tot.completed,
        dropped=tot.dropped_total,
        in_flight=tot.in_flight,
        holds=holds,
        reason=reason,
    )


class _Latencies(BaseObserver):
    """Every request's end-to-end latency, where the simulator follows single requests."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.follows_requests = True

    def on_interval(self, metrics: IntervalMetrics, plan: Plan, simulator: Simulator) -> None:
        lat = simulator.interval_latencies()
        if lat is None:
            self.follows_requests = False
        else:
            self.samples.extend(lat)

    def summary(self) -> dict[str, float] | None:
        """p50/p95/p99/mean of the run's requests (None for the fluid model)."""
        return latency_summary(self.samples) if self.follows_requests else None


def _predicted(
    scenario: Scenario, plan: Plan, rates: Mapping[str, float], dollars_per_hour: float | None
) -> Figures:
    """The latency model's attainment and p50/p99 of ``plan`` at ``rates``."""
    p50 = predict_plan(scenario, plan, rates, percentile=0.5)
    p99 = predict_plan(scenario, plan, rates, percentile=0.99)
    return Figures(
        p99.attainment, _finite(p50.latency_s * 1e3), _finite(p99.latency_s * 1e3), dollars_per_hour
    )


def _verdict(
    arrivals: float, dropped: float, in_flight: float, sim: Figures, target: float
) -> tuple[bool, str]:
    """Whether the simulated run meets the SLO's target (module docstring), and why."""
    if sim.attainment is not None:
        ok = sim.attainment >= target
        word = "reaches" if ok else "misses"
        return ok, f"simulated attainment {pct(sim.attainment)} {word} the target {pct(target)}"
    if arrivals <= 0:
        return False, "no request arrived in the simulation"
    lost = (dropped + in_flight) / arrivals
    ok = lost <= 1.0 - target
    word = "within" if ok else "more than"
    return ok, f"{pct(lost)} dropped or queued at the end, {word} 1 - target = {pct(1 - target)}"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
