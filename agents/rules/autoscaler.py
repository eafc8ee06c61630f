"""The threshold autoscaler (Kubernetes HPA / Ray Serve style)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jbrl.agents.policy import ControlState, Policy, coerce_params
from jbrl.agents.rules.cache import PlanCache
from jbrl.errors import InfeasibleError, InputError
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.coverage import STRUCTURAL_KINDS, served_rates, variants_of
from jbrl.planning.plan import Plan, WorkerShare
from jbrl.scenario.model import Scenario


class AutoscalerPolicy(Policy):
    """Threshold autoscaler (Kubernetes HPA / Ray Serve style), parameters
    ``autoscaler:high=0.8:low=0.3:up_window=1:down_window=5[:target=0.55]``.

    Variants stay those of the cheapest MILP plan at the first decision, whose workers are the
    starting point (re-placed with traffic in proportion to capacity, no explicit routing; if
    that would send data backward, the workers are picked greedily instead). Every interval,
    per operator, utilization = mean busy fraction of its workers plus its backlog in units of
    its capacity over the interval (like Ray Serve's queued-plus-running count). Above ``high``
    for ``up_window`` intervals in a row: add the cheapest free worker (ties: the one with the
    most capacity) that keeps the plan valid (no backward traffic; checked with
    :func:`jbrl.planning.cost.evaluate_plan`), repeatedly, until the projected utilization is at most
    ``target`` (default (high + low) / 2; HPA's proportional rule). Below ``low`` for
    ``down_window`` intervals: remove the most expensive workers whose removal keeps the
    projected utilization at most ``target``. Traffic is always split in proportion to capacity.
    """

    name = "autoscaler"

    def __init__(self, **params: Any) -> None:
        types = {
            "high": float,
            "low": float,
            "up_window": int,
            "down_window": int,
            "target": float,
            "max_util": float,
        }
        p = coerce_params(params, types)
        self.high = float(p.get("high", 0.8))
        self.low = float(p.get("low", 0.3))
        self.up_window = int(p.get("up_window", 1))
        self.down_window = int(p.get("down_window", 5))
        self.target = float(p.get("target", (self.high + self.low) / 2))
        self.max_util = float(p.get("max_util", 1.0))
        if not (0 < self.low < self.high):
            raise InputError(
                "need 0 < low < high", field="policy.low", value=f"{self.low}/{self.high}"
            )
        if not (self.low <= self.target <= self.high):
            raise InputError("must be within [low, high]", field="policy.target", value=self.target)
        if self.up_window < 1 or self.down_window < 1:
            raise InputError(
                "windows must be >= 1",
                field="policy.up_window/down_window",
                value=(self.up_window, self.down_window),
            )
        self.cache = PlanCache("milp", self.max_util, 10.0)
        self.cached_solve_s = 0.0
        self.reset_counters()

    def reset_counters(self) -> None:
        self._variants: dict[str, str] | None = None
        self._above: dict[str, int] = {}
        self._below: dict[str, int] = {}

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        self.cache.bind(scenario)
        self.reset_counters()

    # ------------------------------------------------------------------ plans

    def build(
        self, scenario: Scenario, workers: Mapping[str, list[str]], rates: Mapping[str, float]
    ) -> tuple[Plan, bool]:
        """Plan with the fixed variants, ``workers`` per operator and traffic in proportion to
        capacity; and whether it is valid (no structural violation)."""
        assert self._variants is not None
        demand = scenario.demand(rates)
        shares: dict[str, list[WorkerShare]] = {}
        for op, ws in workers.items():
            caps = [scenario.capacity(op, self._variants[op], w) for w in ws]
            total = sum(caps)
            if not ws or total <= 0:
                continue
            shares[op] = [
                WorkerShare(w, demand[op] * c / total) for w, c in zip(ws, caps, strict=True)
            ]
        plan = Plan(dict(self._variants), shares, None, {"rates": dict(rates)})
        report = evaluate_plan(scenario, plan, rates, accuracy_target=-math.inf)
        ok = not any(v.kind in STRUCTURAL_KINDS for v in report.violations)
        ok = ok and all(workers.get(o.name) for o in scenario.operators)
        return plan, ok

    def _capacity(self, scenario: Scenario, op: str, ws: list[str]) -> float:
        assert self._variants is not None
        return sum(scenario.capacity(op, self._variants[op], w) for w in ws)

    def _candidates(
        self, scenario: Scenario, op: str, used: set[str]
    ) -> list[tuple[float, float, str]]:
        """Free workers that can run ``op``'s variant: cheapest first, then most capacity."""
        assert self._variants is not None
        out = []
        for w in scenario.workers:
            if w.name in used:
                continue
            c = scenario.capacity(op, self._variants[op], w.name)
            if c > 0:
                out.append((w.price, -c, w.name))
        return sorted(out)

    def _greedy(self, scenario: Scenario, rates: Mapping[str, float]) -> dict[str, list[str]]:
        """Workers per operator, topological order, cheapest capacity first, until each
        operator's utilization is at most ``target``."""
        demand = scenario.demand(rates)
        workers: dict[str, list[str]] = {o: [] for o in scenario.topo_order}
        used: set[str] = set()
        for op in scenario.topo_order:
            for _, _, w in self._candidates(scenario, op, used):
                if workers[op] and demand[op] <= self.target * self._capacity(
                    scenario, op, workers[op]
                ):
                    break
                trial = {**workers, op: workers[op] + [w]}
                partial = {o: ws for o, ws in trial.items() if ws}
                if self._valid_prefix(scenario, partial, rates):
                    workers[op].append(w)
                    used.add(w)
        return workers

    def _valid_prefix(
        self, scenario: Scenario, workers: Mapping[str, list[str]], rates: Mapping[str, float]
    ) -> bool:
        plan, _ = self.build(scenario, workers, rates)
        report = evaluate_plan(scenario, plan, rates, accuracy_target=-math.inf)
        return not any(v.kind in STRUCTURAL_KINDS for v in report.violations)

    # ------------------------------------------------------------------ decide

    def decide(self, state: ControlState) -> Plan:
        s = state.scenario
        self.cache.bind(s)
        self.cache.reused_s = 0.0
        try:
            return self._decide(state)
        finally:
            self.cached_solve_s = self.cache.reused_s

    def _decide(self, state: ControlState) -> Plan:
        s = state.scenario
        rates = state.last_rates()
        cur = state.current_plan
        if cur is None or self._variants is None:
            res, at = self.cache.solve_clamped(rates)
            if res is None:
                raise InfeasibleError(f"{self.name}: no plan for rates {rates}")
            self._variants = variants_of(s, res.plan)
            workers = {op: list(ws) for op, ws in served_rates(s, res.plan).items() if ws}
            plan, ok = self.build(s, workers, rates)
            if not ok:
                plan, ok = self.build(s, self._greedy(s, rates), rates)
            if not ok:
                raise InfeasibleError(f"{self.name}: no valid starting plan")
            return plan
        workers = {op: list(ws) for op, ws in served_rates(s, cur).items() if ws}
        util = self._utilization(state, workers)
        changed = False
        for op in s.topo_order:
            u = util.get(op, 0.0)
            self._above[op] = self._above.get(op, 0) + 1 if u > self.high else 0
            self._below[op] = self._below.get(op, 0) + 1 if u < self.low else 0
            if self._above[op] >= self.up_window:
                changed |= self._scale_up(s, workers, op, u, rates)
                self._above[op] = 0
            elif self._below[op] >= self.down_window:
                changed |= self._scale_down(s, workers, op, u, rates)
                self._below[op] = 0
        if not changed:
            return cur
        plan, ok = self.build(s, workers, rates)
        return plan if ok else cur

    def _utilization(
        self, state: ControlState, workers: Mapping[str, list[str]]
    ) -> dict[str, float]:
        s = state.scenario
        m = state.last_metrics
        demand = s.demand(state.last_rates())
        out: dict[str, float] = {}
        for op in s.topo_order:
            cap = self._capacity(s, op, workers.get(op, []))
            if cap <= 0:
                out[op] = math.inf
                continue
            busy = m.operator_utilization.get(op, math.nan) if m is not None else math.nan
            if not math.isfinite(busy):
                out[op] = demand[op] / cap
                continue
            backlog = m.operator_backlog.get(op, 0.0) if m is not None else 0.0
            out[op] = busy + backlog / (cap * max(state.interval_s, 1e-9))
        return out

    def _scale_up(
        self,
        s: Scenario,
        workers: dict[str, list[str]],
        op: str,
        u: float,
        rates: Mapping[str, float],
    ) -> bool:
        used = {w for ws in workers.values() for w in ws}
        base = self._capacity(s, op, workers[op])
        load = u * base  # in req/s of planning capacity
        added = False
        for _, _, w in self._candidates(s, op, used):
            if load <= self.target * self._capacity(s, op, workers[op]):
                break
            trial = {**workers, op: workers[op] + [w]}
            if self.build(s, trial, rates)[1]:
                workers[op] = trial[op]
                added = True
        return added

    def _scale_down(
        self,
        s: Scenario,
        workers: dict[str, list[str]],
        op: str,
        u: float,
        rates: Mapping[str, float],
    ) -> bool:
        assert self._variants is not None
        load = u * self._capacity(s, op, workers[op])
        removed = False
        for w in sorted(workers[op], key=lambda n: -s.worker_map[n].price):
            rest = [x for x in workers[op] if x != w]
            if not rest or load > self.target * self._capacity(s, op, rest):
                continue
            trial = {**workers, op: rest}
            if self.build(s, trial, rates)[1]:
                workers[op] = rest
                removed = True
        return removed
