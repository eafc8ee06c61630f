"""One plan for the whole run (JellyBean-style one-shot): MILP-static and the JellyBean
heuristic."""

from __future__ import annotations

from typing import Any

from jbrl.agents.policy import ControlState
from jbrl.agents.rules.base import PlannerPolicy, lookahead_of
from jbrl.errors import InfeasibleError
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario


class MilpStaticPolicy(PlannerPolicy):
    """One plan for the trace's peak x (1 + ``headroom``), made at the first decision and never
    changed (JellyBean-style one-shot). Reads the peak from the lookahead; without one, plans
    for the nominal rates."""

    name = "milp-static"
    clairvoyant = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._plan: Plan | None = None

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        super().reset(scenario, seed)
        self._plan = None

    def _decide(self, state: ControlState) -> Plan:
        if self._plan is None or state.current_plan is None:
            if state.lookahead is not None:
                peak = lookahead_of(state, self.name).peak()
            else:
                peak = state.scenario.nominal_rates()
            res, _ = self.cache.solve_clamped(self._target(peak, state.scenario))
            if res is None:
                raise InfeasibleError(f"{self.name}: no plan for the peak rates {peak}")
            self._plan = res.plan
        assert self._plan is not None
        return self._plan


class JellyBeanStaticPolicy(MilpStaticPolicy):
    """One JellyBean-heuristic plan for the trace's peak (the paper's deployment)."""

    name = "jellybean"
    planner = "jellybean"
