"""Decision makers behind one interface (ARCHITECTURE.md, "agents/").

``get_planner(name, **options).plan(scenario, rates=None, accuracy=None) -> PlanResult`` with
names ``milp``, ``jellybean``, ``cloud-only``, ``most-accurate`` (see :mod:`jbrl.agents.base`).
"""

from jbrl.agents.base import (
    Planner,
    PlanResult,
    get_planner,
    planner_names,
    register_planner,
)

__all__ = ["PlanResult", "Planner", "get_planner", "planner_names", "register_planner"]
