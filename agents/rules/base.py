"""The base of the policies that ask a planner (:class:`PlannerPolicy`): parameters shared by
every MILP- and JellyBean-based rule, the memoized planner calls, the reactive keep rule and the
clairvoyant policies' access to the true trace."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jbrl.agents.policy import ControlState, Policy, coerce_params
from jbrl.agents.rules.cache import PlanCache
from jbrl.errors import InfeasibleError, InputError
from jbrl.planning.coverage import COST_RTOL, coverage, scaled
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace


class PlannerPolicy(Policy):
    """A policy that asks a planner (through a :class:`PlanCache`).

    Parameters every planner policy takes: ``headroom`` (targets are rates x (1 + headroom)),
    ``max_util`` (unset by default: plans meet the scenario's latency SLO by the latency model
    where it has a bound; given, the planner's cap on worker utilization, capacity only),
    ``time_limit`` (seconds per solve)
    and ``grid`` (0 by default: targets are used as they are; ``grid=0.01`` rounds every
    target up to a multiple of 1 % of the nominal rates, so that a long run over noisy rates -
    an imitation teacher's - reuses memoized solves).

    ``cached_solve_s``: solver time of the memoized solves the last :meth:`decide` reused; an
    evaluator adds it to the measured decision time so memoization does not flatter it.
    """

    planner = "milp"
    default_headroom = 0.0
    extra_params: dict[str, type] = {}

    def __init__(self, **params: Any) -> None:
        types = {
            "headroom": float,
            "max_util": float,
            "time_limit": float,
            "grid": float,
            **self.extra_params,
        }
        p = coerce_params(params, types)
        self.headroom = float(p.pop("headroom", self.default_headroom))
        mu = p.pop("max_util", None)
        self.max_util: float | None = None if mu is None else float(mu)
        self.time_limit = float(p.pop("time_limit", 10.0))
        self.grid = float(p.pop("grid", 0.0))
        if not (self.headroom >= 0 and math.isfinite(self.headroom)):
            raise InputError("must be a number >= 0", field="policy.headroom", value=self.headroom)
        if self.max_util is not None and not (0 < self.max_util <= 1):
            raise InputError("must be in (0, 1]", field="policy.max_util", value=self.max_util)
        if not self.time_limit > 0:
            raise InputError(
                "must be > 0 seconds", field="policy.time_limit", value=self.time_limit
            )
        if not (0 <= self.grid < 1):
            raise InputError(
                "must be in [0, 1) (a fraction of the nominal rates)",
                field="policy.grid",
                value=self.grid,
            )
        self.params = p
        self.cache = PlanCache(self.planner, self.max_util, self.time_limit)
        self.cached_solve_s = 0.0

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        self.cache.bind(scenario)

    def decide(self, state: ControlState) -> Plan:
        self.cache.bind(state.scenario)
        self.cache.reused_s = 0.0
        try:
            return self._decide(state)
        finally:
            self.cached_solve_s = self.cache.reused_s

    def _decide(self, state: ControlState) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError

    def _replan(self, state: ControlState, target: Mapping[str, float]) -> Plan:
        """The reactive rule: the cheapest plan at ``target``, unless the current plan covers it
        at a cost that is not higher."""
        cur = state.current_plan
        res, at = self.cache.solve_clamped(target, cur)
        if res is None:
            if cur is not None:
                return cur
            raise InfeasibleError(f"{self.name}: no plan for rates {dict(target)}")
        if cur is not None:
            cov = coverage(state.scenario, cur, at, self.max_util)
            best = float(res.total_cost if res.total_cost is not None else math.inf)
            if cov.covers and cov.cost <= best * (1 + COST_RTOL) + 1e-12:
                return cur
        return res.plan

    def _target(self, rates: Mapping[str, float], scenario: Scenario) -> dict[str, float]:
        """``rates`` x (1 + headroom), rounded up to the grid when there is one."""
        target = scaled(rates, 1.0 + self.headroom)
        if self.grid <= 0:
            return target
        nominal = scenario.nominal_rates()
        out = {}
        for s, v in target.items():
            step = self.grid * nominal.get(s, 0.0)
            out[s] = math.ceil(v / step - 1e-9) * step if step > 0 else v
        return out


def lookahead_of(state: ControlState, who: str) -> Trace:
    """The true trace a clairvoyant policy reads (InputError when the caller gave none)."""
    tr = state.lookahead
    if tr is None:
        raise InputError(
            f"{who} is clairvoyant: it needs the true trace (ControlState.lookahead); evaluators "
            "give it to policies with clairvoyant=True",
            field="policy",
            value=who,
        )
    return tr.for_scenario(state.scenario)
