"""Plans and their cost, and the planners that make them (ARCHITECTURE.md, "Plan and cost").

* :mod:`~jbrl.planning.plan` — the :class:`Plan` type and its JSON form;
* :mod:`~jbrl.planning.cost` — the cost model and constraint checks (:func:`evaluate_plan`);
* :mod:`~jbrl.planning.base` — one interface for every planner (:class:`Planner` returns a
  :class:`PlanResult`) and the registry (:func:`get_planner`);
* :mod:`~jbrl.planning.milp` — the exact planner (HiGHS); :mod:`~jbrl.planning.jellybean` — the
  paper's heuristic; :mod:`~jbrl.planning.baselines` — cloud-only, most-accurate;
* :mod:`~jbrl.planning.groups` — interchangeable workers; :mod:`~jbrl.planning.coverage` — a
  plan's coverage, cost and capacity at other rates; :mod:`~jbrl.planning.ladder` — a ladder of
  plans over load levels.

``get_planner(name, **options).plan(scenario, rates=None, accuracy=None) -> PlanResult`` with
names ``milp``, ``jellybean``, ``cloud-only``, ``most-accurate``.
"""

from jbrl.planning.base import (
    Planner,
    PlanResult,
    get_planner,
    planner_names,
    register_planner,
)
from jbrl.planning.cost import CostReport, evaluate_plan
from jbrl.planning.plan import Flow, Plan, WorkerShare, load_plan, plan_from_dict

__all__ = [
    "CostReport",
    "Flow",
    "Plan",
    "PlanResult",
    "Planner",
    "WorkerShare",
    "evaluate_plan",
    "get_planner",
    "load_plan",
    "plan_from_dict",
    "planner_names",
    "register_planner",
]
