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
  ``slo_attainment`` = within / (completed + dropped): a dropped request misses the SLO. A
  scenario without a latency bound has neither: both are NaN (``missed_slo`` counts the drops).
* Dollars: compute = the hourly price of every worker the plan sends traffic to, for the time it
  is in the plan (loading included); communication = bytes actually sent on each link times the
  link's $/GB (times the scenario's ``comm_cost_scale``), as in :mod:`jbrl.planning.cost`.
* A task that waited longer than ``timeout_s`` in one worker's queue is dropped when the worker
  reaches it (reason ``timeout``): a per-queue deadline, like Triton's queue policy.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from jbrl.errors import InputError
from jbrl.jsonable import finite_or_none
from jbrl.planning.latency import SERVICE_FAMILIES, ServiceFamily
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.sim.faults import FaultSchedule

DROP_REASONS: tuple[str, ...] = ("timeout", "crash", "no_worker")
NO_BOUND_TIMEOUT_S = 20.0
"""Queue deadline (s) of a scenario without a latency bound (10 x the 2000 ms bound that
JellyBean-imported scenarios used to be given, so their simulations keep their timeouts)."""

Rates = Mapping[str, float] | Sequence[float] | np.ndarray
RateSchedule = Rates | Sequence[tuple[float, Rates]]


@dataclass(frozen=True)
class SimConfig:
    """Options of both simulators.

    * ``service``: distribution of service times. ``lognormal`` is fitted to the profile's p50 and
      p90; ``exponential`` and ``deterministic`` keep the lognormal's mean (exact queueing tests).
    * ``timeout_s``: per-queue deadline (s); ``None`` means ``timeout_factor`` times the SLO's
      latency bound (:data:`NO_BOUND_TIMEOUT_S` without one).
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
        bound = scenario.slo.bound_s
        return NO_BOUND_TIMEOUT_S if bound is None else self.timeout_factor * bound


def reference_latency_s(scenario: Scenario) -> float:
    """The latency bound, or without one the bound the default timeout corresponds to
    (:data:`NO_BOUND_TIMEOUT_S` / 10): where a latency grid is laid out."""
    bound = scenario.slo.bound_s
    return NO_BOUND_TIMEOUT_S / SimConfig.timeout_factor if bound is None else bound


class RunFigures:
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
    def dollars_per_hour(self) -> float:
        """Dollars per hour of (simulated or wall) time covered; 0 for an empty span."""
        return self.dollars * 3600.0 / self.duration if self.duration > 0 else 0.0

    @property
    def throughput(self) -> float:
        """Completed requests per second."""
        return self.completed / self.duration if self.duration > 0 else 0.0

    @property
    def slo_attainment(self) -> float:
        """within_slo / (completed + dropped): a dropped request misses the SLO; NaN when
        nothing finished or the scenario has no latency bound."""
        done = self.completed + self.dropped_total
        return self.within_slo / done if done > 0 else math.nan

    @property
    def missed_slo(self) -> float:
        """Requests that missed the SLO: finished late or dropped (only the dropped ones when
        the scenario has no latency bound)."""
        if math.isnan(self.within_slo):
            return self.dropped_total
        return max(0.0, self.completed + self.dropped_total - self.within_slo)


@dataclass
class IntervalMetrics(RunFigures):
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
            "within_slo": finite_or_none(self.within_slo),
            "dropped": dict(self.dropped),
            "dropped_total": self.dropped_total,
            "in_flight_start": self.in_flight_start,
            "in_flight": self.in_flight,
            "throughput": self.throughput,
            "slo_attainment": finite_or_none(self.slo_attainment),
            "latency_ms": {k: finite_or_none(v) for k, v in self.latency_ms.items()},
            "compute_dollars": self.compute_dollars,
            "communication_dollars": self.communication_dollars,
            "dollars": self.dollars,
            "utilization": dict(self.utilization),
            "wait_ms": {k: finite_or_none(v) for k, v in self.wait_ms.items()},
            "operator_backlog": dict(self.operator_backlog),
            "operator_utilization": dict(self.operator_utilization),
            "reconfigured": list(self.reconfigured),
        }


def empty_drops() -> dict[str, float]:
    return dict.fromkeys(DROP_REASONS, 0.0)


def latency_summary(latencies_ms: np.ndarray | Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and mean of a sample (NaN when empty)."""
    arr = np.asarray(latencies_ms, dtype=float)
    if arr.size == 0:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "mean": math.nan}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99]).tolist()
    return {"p50": p50, "p95": p95, "p99": p99, "mean": float(arr.mean())}


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

    def interval_latencies(self) -> list[float] | None:
        """End-to-end latency (ms) of every request completed in the last :meth:`advance`, or
        None where the simulator does not follow single requests (the fluid model)."""
        return None


def rate_pieces(
    scenario: Scenario, seconds: float, rates: RateSchedule
) -> list[tuple[float, np.ndarray]]:
    """Normalise an ``advance`` rate argument into ``[(seconds, vector)]``."""
    if not (seconds > 0 and math.isfinite(seconds)):
        raise InputError(
            "must be a positive, finite number of seconds", field="seconds", value=seconds
        )
    if isinstance(rates, (Mapping, np.ndarray)):
        return [(float(seconds), _vector(scenario, rates))]
    seq: list[Any] = list(rates)
    if seq and isinstance(seq[0], tuple):
        pieces = [(float(d), _vector(scenario, r)) for d, r in seq]
        total = sum(d for d, _ in pieces)
        if abs(total - seconds) > 1e-6 * max(1.0, seconds):
            raise InputError(
                f"rate pieces last {total:g} s but the interval is {seconds:g} s",
                field="rates",
                value=[d for d, _ in pieces],
            )
        return [(d, v) for d, v in pieces if d > 0]
    return [(float(seconds), _vector(scenario, seq))]


def _vector(scenario: Scenario, rates: Rates) -> np.ndarray:
    """:func:`~jbrl.scenario.traces.rates_vector`, which takes a vector as a sequence."""
    from jbrl.scenario.traces import rates_vector

    return rates_vector(scenario, cast("Sequence[float]", rates))
