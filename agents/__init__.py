"""Decision makers behind one interface (ARCHITECTURE.md, "RL environment and policies").

* :mod:`~jbrl.agents.policy` — the :class:`~jbrl.agents.policy.Policy` interface (control state
  -> plan) and the registry of policy names (:func:`~jbrl.agents.policy.get_policy`);
* :mod:`~jbrl.agents.rules` — the rule-based policies (MILP-reactive, -hysteresis, -oracle,
  -static, the JellyBean heuristic, the autoscaler): one family, one meaning per name;
* :mod:`~jbrl.agents.ppo` — the learned policy and its training.

Planners (which plan is cheapest for a given load) live below, in :mod:`jbrl.planning`.
"""

# The baseline control policies of jbrl.agents.rules, registered lazily (importing them loads
# the planners only when a policy is built): get_policy("milp-reactive:headroom=0.2") finds them.
from jbrl.agents.policy import register_policy as _register_policy  # noqa: E402

for _name, _attr in (
    ("milp-reactive", "MilpReactivePolicy"),
    ("milp-hysteresis", "MilpHysteresisPolicy"),
    ("milp-predictive", "MilpPredictivePolicy"),
    ("milp-oracle", "MilpOraclePolicy"),
    ("oracle", "OraclePolicy"),
    ("milp-static", "MilpStaticPolicy"),
    ("milp-static-peak", "MilpStaticPolicy"),
    ("jellybean", "JellyBeanStaticPolicy"),
    ("jellybean-reactive", "JellyBeanReactivePolicy"),
    ("autoscaler", "AutoscalerPolicy"),
):
    _register_policy(_name, f"jbrl.agents.rules:{_attr}")
_register_policy("ppo", "jbrl.agents.ppo:PpoPolicy")  # the learned policy (lazy)
