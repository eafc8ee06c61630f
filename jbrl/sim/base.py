"""The simulator interface shared by the fluid and the discrete-event simulator.

A simulator is driven from outside, one control interval at a time (ARCHITECTURE.md,
"Simulators")::

    sim = FluidSimulator()                      # or DesSimulator()
    sim.reset(scenario, plan, seed=0)           # the plan is deployed, queues are empty
    m = sim.advance(60.0, {"ReadImage": 40.0, "ReadSpeech": 40.0})
    sim.apply(new_plan)                         # reconfiguration: changed workers load models
    m = sim.advance(60.0, rates)

Units and counting (both simulators):

* A **request** is one arrival of the workflow. Requests arrive at rate ``max_s rate(s)``; source
  ``s`` emits data for a fraction ``rate(s) / max_s rate(s)`` of them (coupled, so a join sees
  ``min`` of its inputs: the cost model's ``rate(v) = min_u rate(u) * ratio``). A request
  completes when all its tasks are done; it is dropped (with a reason) when one of its tasks is.
* Accounting invariant, per interval and in total: ``arrivals = completed + dropped + in flight``
  (``in_flight_start + arrivals = completed + dropped + in_flight``).
* ``within_slo``: completed requests whose end-to-end latency is within the scenario's bound.
  ``slo_attainment`` = within / (completed + dropped): a dropped request misses the SLO.
* Dollars: compute = the hourly price of every worker the plan sends traffic to, for the time it
  is in the plan (loading included); communication = bytes actually sent on each link times the
  link's $/GB (times the scenario's ``comm_cost_scale``), as in :mod:`jbrl.planning.cost`.
* A task that waited longer than ``timeout_s`` in one worker's queue is dropped when the worker
  reaches it (reason ``timeout``): a per-queue deadline, like Triton's queue policy.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from jbrl.errors import InputError
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace
from jbrl.sim.faults import FaultSchedule

ServiceFamily = Literal["lognormal", "exponential", "deterministic"]
SERVICE_FAMILIES: tuple[str, ...] = ("lognormal", "exponential", "deterministic")
DROP_REASONS: tuple[str, ...] = ("timeout", "crash", "no_worker")

Rates = Mapping[str, float] | Sequence[float] | np.ndarray
RateSchedule = Rates | Sequence[tuple[float, Rates]]


@dataclass(frozen=True)
class SimConfig:
    """Options of both simulators.

    * ``service``: distribution of service times. ``lognormal`` is fitted to the profile's p50 and
      p90; ``exponential`` and ``deterministic`` keep the lognormal's mean (exact queueing tests).
    * ``timeout_s``: per-queue deadline (s); ``None`` means ``timeout_factor`` times the SLO's
      latency bound.
    * ``warm_start``: the plan given to ``reset`` starts deployed (no model load time).
    """

    service: ServiceFamily = "lognormal"
    timeout_s: float | None = None
    timeout_factor: float = 10.0
    warm_start: bool = True

    def __post_init__(self) -> None:
        if self.service not in SERVICE_FAMILIES:
            raise InputError(
                f"unknown service-time distribution (choose from {', '.join(SERVICE_FAMILIES)})",
                field="service",
                value=self.service,
            )
        if self.timeout_s is not None and not (self.timeout_s > 0):
            raise InputError(
                "must be a positive number of seconds", field="timeout_s", value=self.timeout_s
            )

    def timeout_for(self, scenario: Scenario) -> float:
        if self.timeout_s is not None:
            return float(self.timeout_s)
        return self.timeout_factor * scenario.slo.latency_ms / 1000.0


class _RunFigures:
    """Figures derived the same way for one interval and for a whole run (fields of the
    dataclasses below: duration, completed, within_slo, dropped, compute/communication dollars)."""

    duration: float
    completed: float
    within_slo: float
    dropped: dict[str, float]
    compute_dollars: float
    communication_dollars: float

    @property
    def dropped_total(self) -> float:
        return float(sum(self.dropped.values()))

    @property
    def dollars(self) -> float:
        return self.compute_dollars + self.communication_dollars

    @property
    def throughput(self) -> float:
        """Completed requests per second."""
        return self.completed / self.duration if self.duration > 0 else 0.0

    @property
    def slo_attainment(self) -> float:
        """within_slo / (completed + dropped): a dropped request misses the SLO; NaN when
        nothing finished."""
        done = self.completed + self.dropped_total
        return self.within_slo / done if done > 0 else math.nan


@dataclass
class IntervalMetrics(_RunFigures):
    """What happened in one interval ``[t_start, t_start + duration)``.

    Counts are requests (floats: the fluid simulator counts fractions). Latency percentiles are over
    the requests completed in the interval (NaN when none completed).
    """

    t_start: float
    duration: float
    arrivals: float
    completed: float
    within_slo: float
    dropped: dict[str, float]
    in_flight_start: float
    in_flight: float
    latency_ms: dict[str, float]
    utilization: dict[str, float]
    wait_ms: dict[str, float]
    operator_backlog: dict[str, float]
    operator_utilization: dict[str, float]
    compute_dollars: float
    communication_dollars: float
    rates: dict[str, float] = field(default_factory=dict)
    reconfigured: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ derived

    @property
    def t_end(self) -> float:
        return self.t_start + self.duration

    @property
    def goodput(self) -> float:
        """Requests per second completed within the latency bound."""
        return self.within_slo / self.duration if self.duration > 0 else 0.0

    def accounting_error(self) -> float:
        """``in_flight_start + arrivals - completed - dropped - in_flight`` (0 when it holds)."""
        return (
            self.in_flight_start
            + self.arrivals
            - self.completed
            - self.dropped_total
            - self.in_flight
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_start": self.t_start,
            "duration": self.duration,
            "rates": dict(self.rates),
            "arrivals": self.arrivals,
            "completed": self.completed,
            "within_slo": self.within_slo,
            "dropped": dict(self.dropped),
            "dropped_total": self.dropped_total,
            "in_flight_start": self.in_flight_start,
            "in_flight": self.in_flight,
            "throughput": self.throughput,
            "slo_attainment": _finite(self.slo_attainment),
            "latency_ms": {k: _finite(v) for k, v in self.latency_ms.items()},
            "compute_dollars": self.compute_dollars,
            "communication_dollars": self.communication_dollars,
            "dollars": self.dollars,
            "utilization": dict(self.utilization),
            "wait_ms": {k: _finite(v) for k, v in self.wait_ms.items()},
            "operator_backlog": dict(self.operator_backlog),
            "operator_utilization": dict(self.operator_utilization),
            "reconfigured": list(self.reconfigured),
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def empty_drops() -> dict[str, float]:
    return dict.fromkeys(DROP_REASONS, 0.0)


def latency_summary(latencies_ms: np.ndarray | Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and mean of a sample (NaN when empty)."""
    arr = np.asarray(latencies_ms, dtype=float)
    if arr.size == 0:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "mean": math.nan}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99]).tolist()
    return {"p50": p50, "p95": p95, "p99": p99, "mean": float(arr.mean())}


@dataclass
class Totals(_RunFigures):
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

    @property
    def dollars_per_hour(self) -> float:
        return self.dollars * 3600.0 / self.duration if self.duration > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration,
            "arrivals": self.arrivals,
            "completed": self.completed,
            "within_slo": self.within_slo,
            "dropped": dict(self.dropped),
            "dropped_total": self.dropped_total,
            "in_flight": self.in_flight,
            "throughput": self.throughput,
            "slo_attainment": _finite(self.slo_attainment),
            "latency_ms": {k: _finite(v) for k, v in self.latency_ms.items()},
            "compute_dollars": self.compute_dollars,
            "communication_dollars": self.communication_dollars,
            "dollars": self.dollars,
            "dollars_per_hour": self.dollars_per_hour,
            "reconfigurations": self.reconfigurations,
        }


def weighted_latency(intervals: Sequence[IntervalMetrics]) -> dict[str, float]:
    """p50/p95/p99/mean latency (ms) over several intervals: each interval's figure weighted by
    its completions (an approximation where the per-request latencies are not at hand)."""
    lat: dict[str, float] = {}
    for key in ("p50", "p95", "p99", "mean"):
        num = den = 0.0
        for m in intervals:
            v = m.latency_ms.get(key, math.nan)
            if m.completed > 0 and math.isfinite(v):
                num += v * m.completed
                den += m.completed
        lat[key] = num / den if den > 0 else math.nan
    return lat


def totals_of(intervals: Iterable[IntervalMetrics], start_in_flight: float = 0.0) -> Totals:
    """Sum a run's intervals; latency figures are completion-weighted means of the intervals'."""
    ivs = list(intervals)
    drops = empty_drops()
    for m in ivs:
        for k, v in m.dropped.items():
            drops[k] = drops.get(k, 0.0) + v
    lat = weighted_latency(ivs)
    return Totals(
        duration=sum(m.duration for m in ivs),
        arrivals=sum(m.arrivals for m in ivs),
        completed=sum(m.completed for m in ivs),
        within_slo=sum(m.within_slo for m in ivs),
        dropped=drops,
        in_flight=ivs[-1].in_flight if ivs else start_in_flight,
        compute_dollars=sum(m.compute_dollars for m in ivs),
        communication_dollars=sum(m.communication_dollars for m in ivs),
        latency_ms=lat,
        reconfigurations=sum(len(m.reconfigured) for m in ivs),
    )


class Simulator(ABC):
    """One interface for both fidelities (see the module docstring)."""

    kind: str = "abstract"

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.scenario: Scenario | None = None
        self.plan: Plan | None = None
        self.time = 0.0

    @abstractmethod
    def reset(
        self,
        scenario: Scenario,
        plan: Plan,
        seed: int | None = 0,
        *,
        design_rates: Mapping[str, float] | None = None,
        faults: FaultSchedule | None = None,
    ) -> None:
        """Start at time 0 with empty queues and ``plan`` deployed (``config.warm_start``).

        ``design_rates`` are the source rates the plan was made for: they resolve fill-order
        workers and proportional routing into routing weights (default: the plan's
        ``meta["rates"]`` if present, else the scenario's nominal rates).
        """

    @abstractmethod
    def apply(self, plan: Plan, design_rates: Mapping[str, float] | None = None) -> list[str]:
        """Reconfigure to ``plan`` now; returns the workers that load a model (and serve nothing
        for its load time)."""

    @abstractmethod
    def advance(self, seconds: float, rates: RateSchedule) -> IntervalMetrics:
        """Simulate ``seconds`` more at source ``rates`` (a mapping or a vector in source order,
        or a list of ``(seconds, rates)`` pieces summing to ``seconds``)."""

    @property
    @abstractmethod
    def in_flight(self) -> float:
        """Requests arrived and not yet completed or dropped."""


def rate_pieces(
    scenario: Scenario, seconds: float, rates: RateSchedule
) -> list[tuple[float, np.ndarray]]:
    """Normalise an ``advance`` rate argument into ``[(seconds, vector)]``."""
    from jbrl.scenario.traces import rates_vector

    if not (seconds > 0 and math.isfinite(seconds)):
        raise InputError(
            "must be a positive, finite number of seconds", field="seconds", value=seconds
        )
    if isinstance(rates, (Mapping, np.ndarray)):
        return [(float(seconds), rates_vector(scenario, rates))]
    seq = list(rates)
    if seq and isinstance(seq[0], tuple):
        pieces = [(float(d), rates_vector(scenario, r)) for d, r in seq]
        total = sum(d for d, _ in pieces)
        if abs(total - seconds) > 1e-6 * max(1.0, seconds):
            raise InputError(
                f"rate pieces last {total:g} s but the interval is {seconds:g} s",
                field="rates",
                value=[d for d, _ in pieces],
            )
        return [(d, v) for d, v in pieces if d > 0]
    return [(float(seconds), rates_vector(scenario, seq))]


# --------------------------------------------------------------------------- driver

Policy = Callable[[float, "IntervalMetrics | None"], "Plan | None"]


@dataclass
class SimResult:
    """A run: the per-interval series and the totals."""

    simulator: str
    scenario: str
    intervals: list[IntervalMetrics]
    totals: Totals
    seed: int | None
    interval_s: float

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


def run(
    sim: Simulator,
    scenario: Scenario,
    trace: Trace,
    policy_or_plan: Plan | Policy,
    interval: float = 60.0,
    *,
    seed: int | None = 0,
    faults: FaultSchedule | None = None,
    duration: float | None = None,
    design_rates: Mapping[str, float] | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> SimResult:
    """Drive ``sim`` over ``trace`` in steps of ``interval`` seconds.

    ``policy_or_plan`` is a fixed :class:`Plan` or a callable ``policy(t, last_metrics)`` returning
    the plan to use from time ``t`` on (``None`` keeps the current one; it is called with
    ``last_metrics=None`` at ``t=0`` and must return the initial plan). Each interval is simulated
    with the trace's exact piecewise rates. ``progress(t, duration)`` is called after each interval.
    """
    if not (interval > 0 and math.isfinite(interval)):
        raise InputError("must be a positive number of seconds", field="interval", value=interval)
    tr = trace if not trace.is_scale else trace.for_scenario(scenario)
    if tr.columns != tuple(s.name for s in scenario.sources):
        tr = tr.for_scenario(scenario)
    end = float(duration if duration is not None else tr.duration)
    if not end > 0:
        raise InputError(
            "the trace has no duration: give one (a '# duration_s:' line or --duration)",
            file=trace.file,
            field="duration_s",
            value=end,
        )
    policy: Policy | None = None
    if isinstance(policy_or_plan, Plan):
        plan0 = policy_or_plan
    else:
        policy = policy_or_plan
        first = policy(0.0, None)
        if first is None:
            raise InputError("the policy returned no initial plan", field="policy")
        plan0 = first
    sim.reset(scenario, plan0, seed, design_rates=design_rates, faults=faults)
    intervals: list[IntervalMetrics] = []
    t = 0.0
    last: IntervalMetrics | None = None
    while t < end - 1e-9:
        if policy is not None and last is not None:
            nxt = policy(t, last)
            if nxt is not None:
                sim.apply(nxt, design_rates)
        step = min(interval, end - t)
        pieces = [(d, v) for d, v in tr.segments_array(t, t + step)]
        last = sim.advance(step, pieces)
        intervals.append(last)
        t += step
        if progress is not None:
            progress(t, end)
    return SimResult(sim.kind, scenario.name, intervals, totals_of(intervals), seed, interval)
