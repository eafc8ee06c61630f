"""MILP-oracle: the clairvoyant reference (reads the true trace; not deployable)."""

from __future__ import annotations

from jbrl.agents.policy import ControlState
from jbrl.agents.rules.base import PlannerPolicy, lookahead_of
from jbrl.planning.plan import Plan


class MilpOraclePolicy(PlannerPolicy):
    """Clairvoyant reference (not deployable): re-solve on the true peak of the coming interval
    (x (1 + ``headroom``), default 0), with the reactive keep rule."""

    name = "milp-oracle"
    clairvoyant = True

    def _decide(self, state: ControlState) -> Plan:
        tr = lookahead_of(state, self.name)
        peak = tr.max_over(state.time_s, state.time_s + state.interval_s)
        return self._replan(state, self._target(peak, state.scenario))
