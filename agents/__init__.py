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

# The baseline control policies of jbrl.agents.policies, registered lazily (importing them loads
# the planners only when a policy is built): get_policy("milp-reactive:headroom=0.2") finds them.
from jbrl.agents.policy import register_policy as _register_policy  # noqa: E402

for _name, _attr in (
    ("milp-reactive", "MilpReactivePolicy"),
    ("milp-hysteresis", "MilpHysteresisPolicy"),
    ("milp-oracle", "MilpOraclePolicy"),
    ("milp-static", "MilpStaticPolicy"),
    ("milp-static-peak", "MilpStaticPolicy"),
    ("jellybean", "JellyBeanStaticPolicy"),
    ("jellybean-reactive", "JellyBeanReactivePolicy"),
    ("autoscaler", "AutoscalerPolicy"),
):
    _register_policy(_name, f"jbrl.agents.policies:{_attr}")
_register_policy("ppo", "jbrl.agents.ppo:PpoPolicy")  # the learned policy (lazy)
