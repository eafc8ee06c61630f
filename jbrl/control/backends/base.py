"""What the controller needs from a serving system: one :class:`Backend` interface.

A backend runs the workflow for real (Ray Serve) or in simulation (the discrete-event simulator
paced to the wall clock). The controller talks to it through four calls::

    backend.start(plan, design_rates)   # deploy the first plan, start serving the trace
    report = backend.metrics()          # what happened since the previous call
    backend.apply(plan, diff, rates)    # reconfigure: only the workers in ``diff`` change
    backend.close()                     # stop serving; in-flight requests finish first

Time is **trace time** (seconds since the start of the trace), which a :class:`Clock` maps to
the wall clock with a speed-up factor: at ``speedup=60`` a 60 s control interval takes one
wall-clock second.

:func:`diff_plans` computes what changes between two plans, worker by worker: a worker that
starts hosting an (operator, variant), stops, or swaps one for another. Rate-only changes (the
same workers and variants, different shares or routing) reconfigure no model.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.sim.base import IntervalMetrics, latency_summary
from jbrl.sim.rollout import totals_of

# Two plans whose worker rates differ by less than this (relative) are the same plan.
RATE_REL_TOL = 1e-3


# --------------------------------------------------------------------------- clock


class Clock:
    """Trace time driven by the wall clock: ``now() = offset + (wall - wall0) * speedup``.

    The clock stands still at ``offset`` until :meth:`start` (the controller starts it just
    before its first decision, so set-up time does not eat into the trace).
    """

    def __init__(self, speedup: float = 1.0, offset: float = 0.0) -> None:
        if not (speedup > 0 and math.isfinite(speedup)):
            raise ValueError(f"speedup must be a positive finite number, got {speedup!r}")
        self.speedup = float(speedup)
        self.offset = float(offset)
        self._wall0: float | None = None

    def start(self) -> None:
        if self._wall0 is None:
            self._wall0 = time.monotonic()

    @property
    def started(self) -> bool:
        return self._wall0 is not None

    def now(self) -> float:
        if self._wall0 is None:
            return self.offset
        return self.offset + (time.monotonic() - self._wall0) * self.speedup

    def wall_seconds(self, trace_seconds: float) -> float:
        return trace_seconds / self.speedup

    def wait_until(self, t: float, stop: threading.Event | None = None) -> bool:
        """Sleep until trace time ``t``; False when ``stop`` was set first."""
        while True:
            left = self.wall_seconds(t - self.now())
            if left <= 0:
                return True
            if stop is not None:
                if stop.wait(min(left, 0.5)):
                    return False
            else:
                time.sleep(min(left, 0.5))


# --------------------------------------------------------------------------- plan diff

Slot = tuple[str, str]  # (operator, variant) hosted by a worker


def calls_per_request(scenario: Scenario) -> dict[str, float]:
    """How many calls of each operator one workflow request makes: the fan-out ratios along
    the DAG (``demand(op) / rate`` with every source at the same rate, e.g. vehicle's ReId
    runs 8.2 times per frame). A live backend that pushes requests through the DAG uses it."""
    coef = scenario.demand_per_unit()
    return {op: min(coef[op].values(), default=0.0) for op in scenario.topo_order}


def fanout_count(calls: float, u: float) -> int:
    """Calls to make for one request when ``calls`` are due on average: ``floor(calls)`` plus
    one more with probability ``calls - floor(calls)`` (``u`` uniform in [0, 1)), so the mean is
    exact and whole ratios are deterministic."""
    whole = math.floor(calls)
    return int(whole) + (1 if u < calls - whole else 0)


def worker_slots(scenario: Scenario, plan: Plan | None) -> dict[str, Slot]:
    """worker -> (operator, variant) it hosts in ``plan``."""
    if plan is None:
        return {}
    out: dict[str, Slot] = {}
    ops = scenario.operator_map
    for op, shares in plan.worker_assignment.items():
        variant = plan.model_assignment.get(op)
        if variant is None and op in ops:
            variant = ops[op].variants[0]
        for s in shares:
            out.setdefault(s.worker, (op, variant or "default"))
    return out


@dataclass(frozen=True)
class WorkerChange:
    """One worker's reconfiguration: ``old`` -> ``new`` (None: not in the plan)."""

    worker: str
    old: Slot | None
    new: Slot | None

    @property
    def kind(self) -> Literal["load", "unload", "swap"]:
        if self.old is None:
            return "load"
        if self.new is None:
            return "unload"
        return "swap"

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "kind": self.kind,
            "old": list(self.old) if self.old else None,
            "new": list(self.new) if self.new else None,
        }


@dataclass(frozen=True)
class PlanDiff:
    """What applying a plan changes: per-worker model changes, and whether shares moved."""

    changes: tuple[WorkerChange, ...] = ()
    rates_changed: bool = False
    batches: tuple[tuple[str, int, int], ...] = ()
    """(worker, old batch size, new batch size) of workers that keep their model"""

    @property
    def structural(self) -> bool:
        """A worker loads, unloads or swaps a model (a variant or placement change)."""
        return bool(self.changes)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.rates_changed and not self.batches

    def to_dict(self) -> dict[str, Any]:
        return {
            "structural": self.structural,
            "rates_changed": self.rates_changed,
            "changes": [c.to_dict() for c in self.changes],
            "batches": [{"worker": w, "old": a, "new": b} for w, a, b in self.batches],
        }


def diff_plans(scenario: Scenario, old: Plan | None, new: Plan) -> PlanDiff:
    """Worker-level difference from ``old`` to ``new``."""
    a, b = worker_slots(scenario, old), worker_slots(scenario, new)
    changes = tuple(
        WorkerChange(w, a.get(w), b.get(w)) for w in sorted(set(a) | set(b)) if a.get(w) != b.get(w)
    )
    rates_changed = old is None or not _same_rates(old, new)
    batches: tuple[tuple[str, int, int], ...] = ()
    if old is not None:
        batches = tuple(
            (w, old.batch_of(w), new.batch_of(w))
            for w in sorted(set(a) & set(b))
            if a[w] == b[w] and old.batch_of(w) != new.batch_of(w)
        )
    return PlanDiff(changes, rates_changed, batches)


def _same_rates(a: Plan, b: Plan) -> bool:
    def shares(p: Plan) -> dict[tuple[str, str], float | None]:
        return {(op, s.worker): s.rate for op, ss in p.worker_assignment.items() for s in ss}

    def order(p: Plan) -> dict[str, list[str]]:
        return {op: [s.worker for s in ss] for op, ss in p.worker_assignment.items()}

    sa, sb = shares(a), shares(b)
    if set(sa) != set(sb) or order(a) != order(b):
        return False
    for k, ra in sa.items():
        rb = sb[k]
        if (ra is None) != (rb is None):
            return False
        if ra is not None and rb is not None and not _close(ra, rb):
            return False
    fa = {(f.edge, f.sender, f.receiver): f.rate for f in a.routing or []}
    fb = {(f.edge, f.sender, f.receiver): f.rate for f in b.routing or []}
    if (a.routing is None) != (b.routing is None) or set(fa) != set(fb):
        return False
    return all(_close(fa[k], fb[k]) for k in fa)


def _close(x: float, y: float) -> bool:
    return abs(x - y) <= RATE_REL_TOL * max(1.0, abs(x), abs(y))


# --------------------------------------------------------------------------- reports


@dataclass
class BackendReport:
    """One report of a backend: the interval's metrics and the state of its workers.

    ``metrics`` uses the simulators' :class:`~jbrl.sim.base.IntervalMetrics` (trace seconds,
    request counts, per-worker utilization, per-source mean rates), so a policy reads the same
    thing online as in simulation. ``counts`` are cumulative since the backend started:
    ``arrived``, ``completed``, ``dropped`` (by reason), ``in_flight``, and ``lost`` (accepted
    requests the backend can no longer account for: always 0 when it works).
    """

    metrics: IntervalMetrics
    worker_queue: dict[str, float] = field(default_factory=dict)
    down: frozenset[str] = frozenset()
    counts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics.to_dict(),
            "worker_queue": dict(self.worker_queue),
            "down": sorted(self.down),
            "counts": dict(self.counts),
        }


@dataclass
class ApplyResult:
    """What a reconfiguration did and how long it took (wall seconds)."""

    reconfigured: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """A serving system the controller drives. See the module docstring."""

    kind: str = "abstract"

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock

    @property
    def workers(self) -> list[str]:
        """The scenario's workers this backend can place operators on."""
        return [w.name for w in self.scenario.workers]

    @abstractmethod
    def start(self, plan: Plan, design_rates: Mapping[str, float] | None = None) -> None:
        """Deploy ``plan`` and start serving."""

    @abstractmethod
    def metrics(self) -> BackendReport:
        """Metrics of the time since the previous call (or since :meth:`start`)."""

    def recent_rates(self) -> dict[str, float] | None:
        """Mean source rates since the last :meth:`metrics` call, without consuming them (None
        when too little time has passed to tell). Used to react to a surge mid-interval."""
        return None

    @abstractmethod
    def down_workers(self) -> frozenset[str]:
        """Workers that are crashed now (cheap: the controller polls it between intervals)."""

    @abstractmethod
    def apply(
        self, plan: Plan, diff: PlanDiff, design_rates: Mapping[str, float] | None = None
    ) -> ApplyResult:
        """Reconfigure to ``plan``; ``diff`` says which workers change."""

    @abstractmethod
    def counts(self) -> dict[str, Any]:
        """Cumulative request counts (see :class:`BackendReport`)."""

    def run_info(self) -> dict[str, Any]:
        """Facts about the backend for the run log (addresses, directories)."""
        return {"kind": self.kind}

    @abstractmethod
    def close(self) -> None:
        """Stop serving; let in-flight requests finish; release resources."""


# --------------------------------------------------------------------------- helpers


def merge_intervals(
    parts: list[IntervalMetrics], latencies_ms: list[float] | np.ndarray | None = None
) -> IntervalMetrics:
    """One :class:`IntervalMetrics` for consecutive pieces: counts and dollars totalled by
    :func:`~jbrl.sim.rollout.totals_of`, utilization and rates time-weighted, latency
    percentiles from the raw samples when given, else the completion-weighted means of the
    pieces'."""
    if not parts:
        raise ValueError("nothing to merge")
    if len(parts) == 1 and latencies_ms is None:
        return parts[0]
    t = totals_of(parts)
    dur = t.duration

    def weighted(get: Callable[[IntervalMetrics], dict[str, float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in {k for p in parts for k in get(p)}:
            num = sum(get(p).get(k, 0.0) * p.duration for p in parts)
            out[k] = num / dur if dur > 0 else 0.0
        return out

    wait: dict[str, float] = {}
    for k in {k for p in parts for k in p.wait_ms}:
        vals = [p.wait_ms[k] for p in parts if math.isfinite(p.wait_ms.get(k, math.nan))]
        wait[k] = float(np.mean(vals)) if vals else math.nan
    return IntervalMetrics(
        t_start=parts[0].t_start,
        duration=dur,
        arrivals=t.arrivals,
        completed=t.completed,
        within_slo=t.within_slo,
        dropped=t.dropped,
        in_flight_start=parts[0].in_flight_start,
        in_flight=t.in_flight,
        latency_ms=latency_summary(latencies_ms) if latencies_ms is not None else t.latency_ms,
        utilization=weighted(lambda p: p.utilization),
        wait_ms=wait,
        operator_backlog=dict(parts[-1].operator_backlog),
        operator_utilization=weighted(lambda p: p.operator_utilization),
        compute_dollars=t.compute_dollars,
        communication_dollars=t.communication_dollars,
        rates=weighted(lambda p: p.rates),
        reconfigured=[w for p in parts for w in p.reconfigured],
    )
