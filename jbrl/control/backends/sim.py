"""The simulated backend: the discrete-event simulator, paced to the wall clock.

A background thread keeps the simulator at the clock's trace time (``speedup`` times faster than
real time), feeding it the trace's exact piecewise rates and the optional fault schedule (fault
times are seconds after the backend started). :meth:`SimBackend.metrics` first catches up to
"now", then reports everything since the previous report, with latency percentiles computed from
every completed request. A reconfiguration is :meth:`DesSimulator.apply`: workers whose
(operator, variant) changes load the model for its load time; queued requests move, none is lost.

If the simulator cannot keep up with the requested speed-up (a heavy trace on a slow machine) it
falls behind the clock rather than skipping time; ``lag_s`` in :meth:`run_info` says by how much.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from jbrl.control.backends.base import (
    ApplyResult,
    Backend,
    BackendReport,
    Clock,
    PlanDiff,
    merge_intervals,
)
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace, constant_trace
from jbrl.sim.base import IntervalMetrics, SimConfig, empty_drops
from jbrl.sim.des import DesSimulator
from jbrl.sim.faults import FaultSchedule


class SimBackend(Backend):
    """Discrete-event simulation in (accelerated) wall-clock time. See the module docstring.

    Args:
        scenario: the scenario to simulate.
        clock: maps wall time to trace time (its ``speedup``).
        trace: per-source rates over trace time (default: the nominal rates forever).
        faults: crash and link slow-down schedule, seconds after :meth:`start`.
        seed: root seed of the simulator.
        config: simulator options (service-time distribution, queue timeout).
        max_step_s: longest single ``advance`` (trace seconds), so reports stay fresh.
    """

    kind = "sim"

    def __init__(
        self,
        scenario: Scenario,
        clock: Clock,
        trace: Trace | None = None,
        faults: FaultSchedule | None = None,
        seed: int | None = 0,
        config: SimConfig | None = None,
        max_step_s: float = 5.0,
    ) -> None:
        super().__init__(scenario, clock)
        tr = trace if trace is not None else constant_trace(scenario, math.inf)
        tr = tr.for_scenario(scenario)
        self.trace = tr
        self.faults = faults
        self.seed = seed
        self.sim = DesSimulator(config or SimConfig())
        self.max_step_s = max_step_s
        self.max_catch_up_s = 0.25
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._parts: list[IntervalMetrics] = []
        self._latencies: list[float] = []
        self._t0 = clock.offset  # trace time at which the simulator's time 0 sits
        self._error: BaseException | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    def start(self, plan: Plan, design_rates: Mapping[str, float] | None = None) -> None:
        with self._lock:
            self.sim.reset(
                self.scenario, plan, self.seed, design_rates=design_rates, faults=self.faults
            )
            self._started = True
        self._thread = threading.Thread(target=self._pace, name="jbrl-sim", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ------------------------------------------------------------------ pacing

    def _pace(self) -> None:
        try:
            while not self._stop.is_set():
                self._catch_up()
                self._stop.wait(0.02)
        except BaseException as exc:  # surfaced by metrics()
            self._error = exc

    def _catch_up(self, until: float | None = None) -> None:
        """Advance the simulator towards trace time ``until`` (default: the clock's now), for at
        most :attr:`max_catch_up_s` wall seconds per call: at a speed-up the simulator cannot
        follow it falls behind (``lag_s``) instead of each call taking longer than the last."""
        deadline = time.monotonic() + self.max_catch_up_s
        with self._lock:
            target = (self.clock.now() if until is None else until) - self._t0
            while target - self.sim.time > 1e-6 and not self._stop.is_set():
                if time.monotonic() > deadline:
                    break
                step = min(self.max_step_s, target - self.sim.time)
                t = self._t0 + self.sim.time
                pieces = self.trace.segments_array(t, t + step)
                m = self.sim.advance(step, pieces)
                m.t_start += self._t0
                self._parts.append(m)
                self._latencies.extend(self.sim.interval_latencies())

    # ------------------------------------------------------------------ interface

    def metrics(self) -> BackendReport:
        if self._error is not None:
            raise RuntimeError(f"the simulator failed: {self._error!r}") from self._error
        with self._lock:
            self._catch_up()
            parts, self._parts = self._parts, []
            lat, self._latencies = self._latencies, []
            if not parts:  # no time passed: an empty interval at the current time
                parts = [self._empty()]
            m = merge_intervals(parts, np.asarray(lat))
            return BackendReport(
                metrics=m,
                worker_queue=self.sim.worker_queues(),
                down=self.sim.down_workers(),
                counts=self.counts(),
            )

    def _empty(self) -> IntervalMetrics:
        t = self._t0 + self.sim.time
        nan = math.nan
        return IntervalMetrics(
            t_start=t,
            duration=0.0,
            arrivals=0.0,
            completed=0.0,
            within_slo=0.0,
            dropped=empty_drops(),
            in_flight_start=self.sim.in_flight,
            in_flight=self.sim.in_flight,
            latency_ms={"p50": nan, "p95": nan, "p99": nan, "mean": nan},
            utilization={},
            wait_ms={},
            operator_backlog={},
            operator_utilization={},
            compute_dollars=0.0,
            communication_dollars=0.0,
            rates=dict(zip(self.trace.columns, self.trace.array_at(t).tolist(), strict=True)),
        )

    def recent_rates(self) -> dict[str, float] | None:
        with self._lock:
            self._catch_up()
            dur = sum(p.duration for p in self._parts)
            if dur <= 0:
                return None
            keys = {k for p in self._parts for k in p.rates}
            return {
                k: sum(p.rates.get(k, 0.0) * p.duration for p in self._parts) / dur for k in keys
            }

    def down_workers(self) -> frozenset[str]:
        with self._lock:
            self._catch_up()
            return self.sim.down_workers()

    def apply(
        self, plan: Plan, diff: PlanDiff, design_rates: Mapping[str, float] | None = None
    ) -> ApplyResult:
        t = time.perf_counter()
        with self._lock:
            self._catch_up()
            names = self.sim.apply(plan, design_rates)
        return ApplyResult(reconfigured=names, wall_s=time.perf_counter() - t)

    def trace_time(self) -> float:
        """How far the simulator has run (trace seconds), which may lag the clock."""
        with self._lock:
            return self._t0 + self.sim.time

    def counts(self) -> dict[str, Any]:
        with self._lock:
            s = self.sim
            if not self._started:
                return {
                    "arrived": 0,
                    "completed": 0,
                    "dropped": empty_drops(),
                    "in_flight": 0,
                    "lost": 0,
                }
            dropped = {k: int(v) for k, v in s.dropped.items()}
            in_flight = int(s.in_flight)
            return {
                "arrived": int(s.arrived),
                "completed": int(s.completed),
                "dropped": dropped,
                "in_flight": in_flight,
                # requests neither completed, dropped with a reason nor in flight
                "lost": int(s.arrived - s.completed - sum(dropped.values()) - in_flight),
            }

    def run_info(self) -> dict[str, Any]:
        with self._lock:
            lag = self.clock.now() - (self._t0 + self.sim.time)
        return {
            "kind": self.kind,
            "speedup": self.clock.speedup,
            "trace": self.trace.file,
            "faults": self.faults.file if self.faults else None,
            "seed": self.seed,
            "lag_s": max(0.0, lag),
        }
