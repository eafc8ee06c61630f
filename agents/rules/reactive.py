"""MILP-reactive and its JellyBean twin: re-plan every interval on the last observed load."""

from __future__ import annotations

from jbrl.agents.policy import ControlState
from jbrl.agents.rules.base import PlannerPolicy
from jbrl.planning.plan import Plan


class MilpReactivePolicy(PlannerPolicy):
    """Re-solve every interval on the last observed rates x (1 + ``headroom``), keeping the
    current plan when the re-solve is not strictly cheaper and the current plan covers the
    target (``milp-reactive:headroom=0.2``)."""

    name = "milp-reactive"
    default_headroom = 0.2

    def _decide(self, state: ControlState) -> Plan:
        return self._replan(state, self._target(state.last_rates(), state.scenario))


class JellyBeanReactivePolicy(MilpReactivePolicy):
    """:class:`MilpReactivePolicy` with JellyBean's heuristic as the planner."""

    name = "jellybean-reactive"
    planner = "jellybean"
