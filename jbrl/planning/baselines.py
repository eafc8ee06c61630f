"""Simple strategies people use today, behind the same interface.

* :class:`CloudOnlyPlanner` — the "serving stack in the cloud" JellyBean compares against: every
  operator runs on the top tier (the highest tier that has workers), so all source data crosses
  the network. Variants and workers are then chosen as well as possible (the MILP restricted to
  top-tier workers), which makes this the *strongest* cloud-only baseline.
* :class:`MostAccuratePlanner` — always the most accurate variant combination of the accuracy
  table (ties: the cheapest of them), placed optimally by the MILP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jbrl.planning.base import PlanResult
from jbrl.planning.milp import MilpPlanner
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario


class CloudOnlyPlanner:
    """Every operator on the top tier; variants and workers chosen optimally there.

    Options are :class:`~jbrl.planning.milp.MilpPlanner` options (``max_util``, ``time_limit``,
    ...) except ``workers``.
    """

    name = "cloud-only"

    def __init__(self, **milp_options: Any) -> None:
        milp_options.pop("workers", None)
        self.milp_options = milp_options

    def top_tier_workers(self, scenario: Scenario) -> list[str]:
        top = max(scenario.worker_tier.values())
        return [w.name for w in scenario.workers if scenario.worker_tier[w.name] == top]

    def plan(
        self,
        scenario: Scenario,
        rates: Mapping[str, float] | None = None,
        accuracy: float | None = None,
    ) -> PlanResult:
        milp = MilpPlanner(
            workers=self.top_tier_workers(scenario), name=self.name, **self.milp_options
        )
        result = milp.plan(scenario, rates, accuracy)
        result.extra["top_tier"] = scenario.tiers[max(scenario.worker_tier.values())]
        return result


class MostAccuratePlanner:
    """The most accurate variant combination, then the cheapest placement (MILP).

    Options are :class:`~jbrl.planning.milp.MilpPlanner` options. If the most accurate
    combination is below the requested accuracy, the request is infeasible.
    """

    name = "most-accurate"

    def __init__(self, **milp_options: Any) -> None:
        milp_options.pop("most_accurate", None)
        self.milp = MilpPlanner(most_accurate=True, name=self.name, **milp_options)

    def plan(
        self,
        scenario: Scenario,
        rates: Mapping[str, float] | None = None,
        accuracy: float | None = None,
        *,
        current_plan: Plan | None = None,
    ) -> PlanResult:
        return self.milp.plan(scenario, rates, accuracy, current_plan=current_plan)
