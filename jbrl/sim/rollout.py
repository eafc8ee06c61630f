"""The one run loop: drive a simulator over a trace, one control interval at a time, and total
the run.

Everything that runs a plan or a policy over a trace goes through :func:`rollout` — ``jbrl
simulate``, ``jbrl evaluate`` (:mod:`jbrl.evaluation.runner`), the validation runs of training
— and everything that totals intervals uses :class:`RunAccumulator` or :func:`totals_of`, the
online controller included, so a figure such as SLO attainment or $/hour is computed one way::

    result = rollout(FluidSimulator(), scenario, trace, plan)            # a fixed plan
    result = rollout(DesSimulator(), scenario, trace, decide, seed=1)    # a decision maker
    result.totals.dollars_per_hour, result.totals.slo_attainment

A decision maker is a callable ``decide(point) -> Plan | None`` (:data:`Decide`): it is asked at
``t = 0`` (no plan, no history yet; it must return the first plan) and at the start of every
later interval; returning ``None`` or the running plan keeps it. Observers
(:class:`RolloutObserver`) see every decision and every simulated interval, which is how the
evaluator records its series without a loop of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jbrl import limits
from jbrl.errors import InputError, Param
from jbrl.jsonable import finite_or_none
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace
from jbrl.sim.base import IntervalMetrics, RunFigures, Simulator, empty_drops
from jbrl.sim.faults import FaultSchedule

LATENCY_KEYS = ("p50", "p95", "p99", "mean")


# --------------------------------------------------------------------------- totals


@dataclass
class Totals(RunFigures):
    """Sums over a run (the accounting invariant holds on these too)."""

    duration: float
    arrivals: float
    completed: float
    within_slo: float
    dropped: dict[str, float]
    in_flight: float
    compute_dollars: float
    communication_dollars: float
    latency_ms: dict[str, float]
    reconfigurations: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration,
            "arrivals": self.arrivals,
            "completed": self.completed,
            "within_slo": finite_or_none(self.within_slo),
            "dropped": dict(self.dropped),
            "dropped_total": self.dropped_total,
            "in_flight": self.in_flight,
            "throughput": self.throughput,
            "slo_attainment": finite_or_none(self.slo_attainment),
            "latency_ms": {k: finite_or_none(v) for k, v in self.latency_ms.items()},
            "compute_dollars": self.compute_dollars,
            "communication_dollars": self.communication_dollars,
            "dollars": self.dollars,
            "dollars_per_hour": self.dollars_per_hour,
            "reconfigurations": self.reconfigurations,
        }


class RunAccumulator:
    """Running totals of intervals added one at a time (the controller adds each backend
    report as it comes; :func:`totals_of` adds a finished run's). Latency figures are the
    completion-weighted means of the intervals' (an approximation where the per-request
    latencies are not at hand)."""

    def __init__(self, start_in_flight: float = 0.0) -> None:
        self.duration = self.arrivals = self.completed = self.within_slo = 0.0
        self.compute_dollars = self.communication_dollars = 0.0
        self.dropped = empty_drops()
        self.in_flight = start_in_flight
        self.reconfigurations = 0
        self._lat_sum = dict.fromkeys(LATENCY_KEYS, 0.0)
        self._lat_n = dict.fromkeys(LATENCY_KEYS, 0.0)

    def add(self, m: IntervalMetrics) -> None:
        self.duration += m.duration
        self.arrivals += m.arrivals
        self.completed += m.completed
        self.within_slo += m.within_slo
        for k, v in m.dropped.items():
            self.dropped[k] = self.dropped.get(k, 0.0) + v
        self.compute_dollars += m.compute_dollars
        self.communication_dollars += m.communication_dollars
        self.in_flight = m.in_flight
        self.reconfigurations += len(m.reconfigured)
        for key in LATENCY_KEYS:
            v = m.latency_ms.get(key, math.nan)
            if m.completed > 0 and math.isfinite(v):
                self._lat_sum[key] += v * m.completed
                self._lat_n[key] += m.completed

    def latency_ms(self) -> dict[str, float]:
        return {
            k: self._lat_sum[k] / self._lat_n[k] if self._lat_n[k] > 0 else math.nan
            for k in LATENCY_KEYS
        }

    def totals(self) -> Totals:
        return Totals(
            duration=self.duration,
            arrivals=self.arrivals,
            completed=self.completed,
            within_slo=self.within_slo,
            dropped=dict(self.dropped),
            in_flight=self.in_flight,
            compute_dollars=self.compute_dollars,
            communication_dollars=self.communication_dollars,
            latency_ms=self.latency_ms(),
            reconfigurations=self.reconfigurations,
        )


def totals_of(intervals: Iterable[IntervalMetrics], start_in_flight: float = 0.0) -> Totals:
    """Sum a run's intervals (see :class:`RunAccumulator`)."""
    acc = RunAccumulator(start_in_flight)
    for m in intervals:
        acc.add(m)
    return acc.totals()


def weighted_latency(intervals: Sequence[IntervalMetrics]) -> dict[str, float]:
    """p50/p95/p99/mean latency (ms) over several intervals, each interval's figure weighted by
    its completions."""
    acc = RunAccumulator()
    for m in intervals:
        acc.add(m)
    return acc.latency_ms()


# --------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class DecisionPoint:
    """What a decision maker may know at ``time_s``: the plan running now (None at the first
    decision), the observed mean source rates of past intervals (oldest first) and the report
    of the interval that just ended (None at the first decision)."""

    time_s: float
    interval_s: float
    plan: Plan | None
    history: list[dict[str, float]]
    last: IntervalMetrics | None


Decide = Callable[[DecisionPoint], "Plan | None"]


def _always(plan: Plan) -> Decide:
    """The decision rule of a fixed plan."""
    return lambda _point: plan


class RolloutObserver(Protocol):
    """Sees a rollout as it happens (every method optional in spirit: implement what you
    need; :class:`BaseObserver` gives no-op defaults)."""

    def on_decision(self, point: DecisionPoint, plan: Plan, changed: bool) -> None:
        """After each decision: the plan in force from ``point.time_s`` on; ``changed`` when it
        was applied as a reconfiguration (never at ``t = 0``)."""

    def on_interval(self, metrics: IntervalMetrics, plan: Plan, simulator: Simulator) -> None:
        """After each simulated interval, with the plan that was in force."""


class BaseObserver:
    """No-op :class:`RolloutObserver`."""

    def on_decision(self, point: DecisionPoint, plan: Plan, changed: bool) -> None:
        return None

    def on_interval(self, metrics: IntervalMetrics, plan: Plan, simulator: Simulator) -> None:
        return None


@dataclass
class SimResult:
    """A run: the per-interval series and the totals."""

    simulator: str
    scenario: str
    intervals: list[IntervalMetrics]
    totals: Totals
    seed: int | None
    interval_s: float
    plans_applied: int = field(default=0)

    def to_dict(self, series: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "simulator": self.simulator,
            "scenario": self.scenario,
            "seed": self.seed,
            "interval_s": self.interval_s,
            "totals": self.totals.to_dict(),
        }
        if series:
            out["intervals"] = [m.to_dict() for m in self.intervals]
        return out


def rollout(
    sim: Simulator,
    scenario: Scenario,
    trace: Trace,
    decide: Plan | Decide,
    interval: float = 60.0,
    *,
    seed: int | None = 0,
    faults: FaultSchedule | None = None,
    duration: float | None = None,
    design_rates: Mapping[str, float] | None = None,
    observers: Sequence[RolloutObserver] = (),
    progress: Callable[[float, float], None] | None = None,
) -> SimResult:
    """Drive ``sim`` over ``trace`` in steps of ``interval`` seconds (the last step may be
    shorter), with a fixed :class:`Plan` or a decision maker (module docstring). Each interval
    is simulated with the trace's exact piecewise rates; ``progress(t, end)`` is called after
    each interval."""
    tr, end = _checked_trace(scenario, trace, interval, duration)
    if sim.kind == "des":
        check_request_budget(scenario, tr, end)
    rule: Decide = decide if callable(decide) else _always(decide)
    history: list[dict[str, float]] = []
    point = DecisionPoint(0.0, interval, None, history, None)
    plan = rule(point)
    if plan is None:
        raise InputError("the policy returned no initial plan", field="policy")
    for ob in observers:
        ob.on_decision(point, plan, False)
    sim.reset(scenario, plan, seed, design_rates=design_rates, faults=faults)
    intervals: list[IntervalMetrics] = []
    applied = 0
    t = 0.0
    while t < end - 1e-9:
        step = min(interval, end - t)
        m = sim.advance(step, tr.segments_array(t, t + step))
        intervals.append(m)
        for ob in observers:
            ob.on_interval(m, plan, sim)
        t += step
        history.append(dict(m.rates))
        if progress is not None:
            progress(t, end)
        if t < end - 1e-9:
            point = DecisionPoint(t, interval, plan, history, m)
            new = rule(point)
            changed = new is not None and new is not plan
            if changed:
                assert new is not None
                sim.apply(new, design_rates)
                plan = new
                applied += 1
            for ob in observers:
                ob.on_decision(point, plan, changed)
    totals = totals_of(intervals)
    return SimResult(sim.kind, scenario.name, intervals, totals, seed, interval, applied)


def _checked_trace(
    scenario: Scenario, trace: Trace, interval: float, duration: float | None
) -> tuple[Trace, float]:
    """The trace per source of ``scenario``, and the run's end time (s)."""
    if not (interval > 0 and math.isfinite(interval)):
        raise InputError("must be a positive number of seconds", field="interval", value=interval)
    tr = trace.for_scenario(scenario)
    end = float(duration if duration is not None else tr.duration)
    if not end > 0:
        raise InputError(
            "the trace has no duration: give one (a '# duration_s:' line or --duration)",
            file=trace.file,
            field="duration_s",
            value=end,
        )
    what = "the run's length" if duration is not None else "the trace's duration"
    field = Param.DURATION if duration is not None else "duration_s"
    file = None if duration is not None else trace.file
    limits.check("trace_s", end, file=file, field=field, what=what)
    n = end / interval
    if n > limits.current().intervals:
        raise limits.over_limit(
            "intervals",
            interval,
            field=Param.INTERVAL,
            what=f"the number of intervals ({end:g} s / interval = {n:.3g})",
        )
    return tr, end


def check_request_budget(scenario: Scenario, trace: Trace, end: float) -> None:
    """A request-level run of ``trace`` (per source of ``scenario``) up to ``end`` seconds is
    expected to simulate at most the limit ``requests``: the trace's mean rate times the
    length, summed over sources and fan-out (every operator's calls)."""
    tr = trace.for_scenario(scenario)
    mean = tr.mean_array(0.0, end)
    per_unit = scenario.demand_per_unit()
    calls = sum(
        min((c * mean[tr.columns.index(s)] for s, c in per_unit[op].items()), default=0.0)
        for op in scenario.topo_order
    )
    expected = (float(mean.sum()) + calls) * end
    if not expected <= limits.current().requests:
        raise limits.over_limit(
            "requests",
            None,
            file=trace.file,
            what=f"the requests this run would simulate ({expected:.3g}: mean rates x {end:g} s)",
        )
