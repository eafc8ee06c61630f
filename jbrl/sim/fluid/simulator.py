"""The fluid simulator: plan changes, availability (model loads, crashes), intervals cut into
steps, and each interval's metrics (the model is described in :mod:`jbrl.sim.fluid`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial

import numpy as np

from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.sim.base import (
    IntervalMetrics,
    RateSchedule,
    SimConfig,
    Simulator,
    empty_drops,
    rate_pieces,
    reference_latency_s,
)
from jbrl.sim.compiled import CompiledPlan, load_changes
from jbrl.sim.faults import FaultSchedule
from jbrl.sim.fluid.metrics import (
    FluidIntervalMetrics,
    IntervalSums,
    worker_utilization,
    worker_wait_ms,
)
from jbrl.sim.fluid.state import LinkSlowdowns, PlanState, plan_state
from jbrl.sim.fluid.step import Queues, step
from jbrl.sim.fluid.topology import LatencyGrid, SourceMix, Topology


class FluidSimulator(Simulator):
    """Fluid-flow simulator (see :mod:`jbrl.sim.fluid`). ``grid_points``: latency grid size."""

    kind = "fluid"

    def __init__(self, config: SimConfig | None = None, grid_points: int = 128) -> None:
        super().__init__(config)
        self.grid_points = grid_points
        self.compiled: CompiledPlan | None = None

    # ------------------------------------------------------------------ lifecycle

    def reset(
        self,
        scenario: Scenario,
        plan: Plan,
        seed: int | None = 0,
        *,
        design_rates: Mapping[str, float] | None = None,
        faults: FaultSchedule | None = None,
    ) -> None:
        self.scenario = scenario
        self.faults = (faults or FaultSchedule()).validate(scenario)
        self._has_faults = bool(self.faults)
        self.time = 0.0
        self.timeout_s = self.config.timeout_for(scenario)
        self.has_bound = scenario.slo.bound_s is not None
        self.bound_s = reference_latency_s(scenario)
        self.latency_grid = LatencyGrid(scenario, self.grid_points, self.timeout_s)
        self.topology = Topology(scenario)
        self.queues = Queues(self.topology, len(scenario.workers))
        self._rates_shape = (len(scenario.sources),)  # of a rate vector
        self.avail_at = [0.0] * len(scenario.workers)
        self._crashed: frozenset[int] = frozenset()
        self._mix: SourceMix | None = None
        self._mix_key: tuple[float, ...] | None = None
        self._pending_reconf: list[str] = []
        self._names_plan: CompiledPlan | None = None
        self._names: list[tuple[int, str]] = []
        self._op_groups: list[tuple[str, list[int], int]] = []
        self.compiled = None
        self._states: dict[tuple[frozenset[int], tuple[float, ...]], PlanState] = {}
        self._move_drops = empty_drops()
        self._move_drops_total = 0.0
        self._down_until = 0.0
        self._state_up: PlanState | None = None
        self._install(plan, design_rates, initial=True)

    # ------------------------------------------------------------------ plan

    def _install(
        self, plan: Plan, design_rates: Mapping[str, float] | None, initial: bool = False
    ) -> list[str]:
        assert self.scenario is not None
        new = CompiledPlan(self.scenario, plan, design_rates, self.config.service)
        old = self.compiled
        changes: dict[int, float] = (
            {} if initial and self.config.warm_start else load_changes(old, new)
        )
        now = self.time
        x = self.queues.x
        moved: list[tuple[int, float]] = []  # (old operator index, tasks)
        for wi in range(len(x)):
            leaving = old is not None and wi in old.deployed and wi not in new.deployed
            if (wi in changes or leaving) and x[wi] > 0 and old is not None:
                moved.append((int(old.w_op[wi]), x[wi]))
                x[wi] = 0.0
            if wi in changes:
                self.avail_at[wi] = now + changes[wi]
        self.compiled = new
        self.plan = plan
        self._states = {}
        self._state_up = None
        self._down_until = max(self.avail_at, default=0.0)
        for oi, tasks in moved:
            self._move(oi, tasks, self._down_at(now), avoid=-1)
        self._pending_reconf.extend(new.workers[i] for i in sorted(changes))
        return [new.workers[i] for i in sorted(changes)]

    def apply(self, plan: Plan, design_rates: Mapping[str, float] | None = None) -> list[str]:
        if self.scenario is None:
            raise RuntimeError("call reset() first")
        return self._install(plan, design_rates)

    def _down_at(self, t: float) -> frozenset[int]:
        crashed = self._crashed_at(t)
        return frozenset([i for i, a in enumerate(self.avail_at) if a > t + 1e-12] + list(crashed))

    def _crashed_at(self, t: float) -> frozenset[int]:
        if not self.faults.crashes:
            return frozenset()
        assert self.compiled is not None
        return frozenset(self.compiled.worker_index[n] for n in self.faults.down_at(t))

    def _move(self, oi: int, tasks: float, down: frozenset[int], avoid: int) -> None:
        """Put ``tasks`` of operator ``oi`` on its workers (available first)."""
        assert self.compiled is not None
        weights = self.compiled.base_weights[oi]
        cand = {w: s for w, s in weights.items() if w not in down and w != avoid}
        if not cand:
            cand = {w: s for w, s in weights.items() if w != avoid}
        tot = sum(cand.values())
        if tot <= 0:
            c = self._c_of(oi)
            lost = tasks / c if c > 0 else 0.0
            self._move_drops["no_worker"] += lost
            self._move_drops_total += lost
            return
        x = self.queues.x
        for w, s in cand.items():
            x[w] += tasks * s / tot

    def _c_of(self, oi: int) -> float:
        """Tasks of operator ``oi`` per request in the current source mix (1 before any)."""
        if self._mix is None:
            return 1.0
        return self._mix.tasks_per_request[oi] or 1.0

    def _state(self, down: frozenset[int], slow_t: float | None) -> PlanState:
        """The plan's :class:`PlanState` with ``down`` unavailable and the link slow-downs at
        ``slow_t`` (None: none), cached per (down, slow-downs in force)."""
        cp = self.compiled
        assert cp is not None and self.scenario is not None
        slow_key: tuple[float, ...] = ()
        if slow_t is not None and self.faults.slowdowns:
            slow_key = tuple(float(s.at <= slow_t < s.until) for s in self.faults.slowdowns)
        key = (down, slow_key)
        st = self._states.get(key)
        if st is None:
            slow = LinkSlowdowns(self.scenario, cp, self.faults, slow_t)
            st = self._states[key] = plan_state(cp, down, slow, self.latency_grid.points)
        return st

    # ------------------------------------------------------------------ advance

    def advance(self, seconds: float, rates: RateSchedule) -> IntervalMetrics:
        if self.scenario is None or self.compiled is None:
            raise RuntimeError("call reset() first")
        pieces = self._pieces(seconds, rates)
        t0 = self.time
        t1 = t0 + seconds
        acc = IntervalSums(len(self.queues.x), self.topology.n_sources, self.latency_grid.cap)
        in_flight0 = self.queues.in_flight
        if self._move_drops_total:
            for k, v in self._move_drops.items():
                acc.drops[k] += v
            self._move_drops = empty_drops()
            self._move_drops_total = 0.0
            self.queues.in_flight -= acc.total_drops()
        if len(pieces) == 1 and not self._has_faults and self._down_until <= t0:
            # the common case (one rate vector, nothing loading, no fault schedule): one step
            dur, lam_l = pieces[0]
            self._step((t0 + dur) - t0, lam_l, t0, acc)
        else:
            cuts = self._cut_times(t0, t1) if self._has_faults or self._down_until > t0 else []
            t = t0
            for dur, lam_l in pieces:
                end = t + dur
                start = t
                for c in cuts:
                    if start < c < end:
                        self._step(c - start, lam_l, start, acc)
                        start = c
                self._step(end - start, lam_l, start, acc)
                t = end
        self.time = t1
        return self._metrics(t0, seconds, in_flight0, acc)

    def _pieces(self, seconds: float, rates: RateSchedule) -> list[tuple[float, list[float]]]:
        """Fast path for one vector or mapping of rates; else :func:`rate_pieces`."""
        names = self.topology.source_names
        if isinstance(rates, np.ndarray) and rates.shape == self._rates_shape:
            lam = rates.tolist()
        elif (
            isinstance(rates, Mapping)
            and len(rates) == len(names)
            and all(map(rates.__contains__, names))
        ):
            lam = [float(rates[n]) for n in names]
        else:
            return [(d, v.tolist()) for d, v in rate_pieces(self.scenario, seconds, rates)]  # type: ignore[arg-type]
        tot = sum(lam)
        if not (seconds > 0 and math.isfinite(seconds)) or not math.isfinite(tot) or min(lam) < 0:
            return [(d, v.tolist()) for d, v in rate_pieces(self.scenario, seconds, np.array(lam))]  # type: ignore[arg-type]
        return [(float(seconds), lam)]

    def _cut_times(self, t0: float, t1: float) -> list[float]:
        cuts = [a for a in self.avail_at if t0 < a < t1]
        if self.faults:
            cuts += [c for c in self.faults.change_times() if t0 < c < t1]
        return sorted(set(cuts))

    def _step(self, dt: float, lam_l: list[float], t: float, acc: IntervalSums) -> None:
        """One step of length ``dt`` from time ``t`` at source rates ``lam_l``: applies crashes,
        picks the plan state (availability, slow-downs) and the source mix, then
        :func:`~jbrl.sim.fluid.step.step`."""
        if dt <= 0:
            return
        if self._has_faults or self._down_until > t:
            down = self._down_at(t)
            crashed = self._crashed_at(t)
            if crashed != self._crashed:
                for w in crashed - self._crashed:
                    self._crash(w, down, acc)
                self._crashed = crashed
            st = self._state(down, t if self.faults.slowdowns else None)
        elif self._state_up is not None:
            st = self._state_up
        else:
            st = self._state_up = self._state(frozenset(), None)
        lam = max(lam_l) if lam_l else 0.0
        if lam > 0:
            # emission probabilities per source (all 1 when the sources run at one rate)
            key = (
                self.topology.all_sources
                if lam_l.count(lam) == len(lam_l)
                else tuple(map(lam.__rtruediv__, lam_l))  # v / lam (no comprehension: faster)
            )
            if key != self._mix_key:
                self._mix = self.topology.mix(key)
                self._mix_key = key
        mix = self._mix
        if mix is None:
            mix = self._mix = self.topology.mix((1.0,) * len(lam_l))
        step(self.queues, st, mix, self.topology, self.latency_grid, lam_l, lam, dt,
             self.timeout_s, acc)  # fmt: skip

    def _crash(self, w: int, down: frozenset[int], acc: IntervalSums) -> None:
        """Worker ``w`` crashes: the task in service is lost, the queue moves to siblings."""
        cp = self.compiled
        assert cp is not None
        oi = int(cp.w_op[w])
        q = self.queues
        xw = q.x[w]
        if oi < 0 or xw <= 0:
            return
        lost = min(1.0, xw)
        c = self._c_of(oi)
        acc.drops["crash"] += lost / c
        q.in_flight -= lost / c
        q.x[w] = 0.0
        self._move(oi, xw - lost, down, avoid=w)
        if self._move_drops_total:
            acc.drops["no_worker"] += self._move_drops["no_worker"]
            q.in_flight -= self._move_drops["no_worker"]
            self._move_drops = empty_drops()
            self._move_drops_total = 0.0

    # ------------------------------------------------------------------ metrics

    def _metrics(
        self, t0: float, seconds: float, in_flight0: float, acc: IntervalSums
    ) -> IntervalMetrics:
        cp = self.compiled
        assert cp is not None
        names = self._names if self._names_plan is cp else self._names_for(cp)
        inv = 1.0 / seconds
        busy = acc.busy_w
        x = self.queues.x
        # plain loops: in Python 3.11 each list comprehension builds a function object
        backlog = {}
        op_util = {}
        for op, ws, n_ws in self._op_groups:
            b = u = 0.0
            for w in ws:
                b += x[w]
                u += busy[w]
            backlog[op] = b
            op_util[op] = u * inv / n_ws if n_ws else 0.0
        rates = {}
        acc_rates = acc.rates
        for i, n in enumerate(self.topology.source_names):
            rates[n] = acc_rates[i] * inv
        lat, within = acc.latency(self.latency_grid.points)
        if not self.has_bound:
            within = math.nan
        reconf, self._pending_reconf = self._pending_reconf, []
        # utilisation and waits are computed on first read (FluidIntervalMetrics)
        return FluidIntervalMetrics(
            t0, seconds, acc.arrivals, acc.completed, within, acc.drops, in_flight0,
            self.queues.in_flight, lat, partial(worker_utilization, names, busy, inv),
            partial(worker_wait_ms, names, acc.wait_w, acc.dep_w), backlog, op_util,
            cp.price_charged_per_s * seconds, acc.comm, rates, reconf,
        )  # fmt: skip

    def _names_for(self, cp: CompiledPlan) -> list[tuple[int, str]]:
        if self._names_plan is not cp:
            self._names = [(w, n) for w, n in enumerate(cp.workers) if cp.w_op[w] >= 0]
            self._op_groups = [
                (cp.ops[oi], sorted(ws), len(ws)) for oi, ws in enumerate(cp.base_weights)
            ]
            self._names_plan = cp
        return self._names

    @property
    def in_flight(self) -> float:
        return self.queues.in_flight
