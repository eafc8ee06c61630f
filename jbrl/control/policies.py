"""Which policy the controller runs: a spec from the policy registry, or ``fallback``.

``fallback`` is the controller's own safety plan used as a policy: every interval, the exact
MILP at the observed load with headroom (reactive, no memory). Every other spec
(``milp-reactive:headroom=0.2``, ``ppo:path=...``, ``jellybean``, ``autoscaler``, ...) goes to
:func:`jbrl.agents.policy.get_policy` after the modules that register policies are imported.
"""

from __future__ import annotations

import importlib

from jbrl.agents.policy import (
    SCENARIO_AWARE,
    ControlState,
    Policy,
    coerce_params,
    get_policy,
    parse_policy_spec,
)
from jbrl.control.safety import FallbackPlanner
from jbrl.errors import InputError, Param
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario

# Modules that register policies when imported (missing ones are skipped).
POLICY_MODULES = ("jbrl.agents.rules", "jbrl.agents.ppo")


class FallbackPolicy(Policy):
    """The controller's MILP safety plan as a policy: re-plan for the last observed load.

    Parameters (spec ``fallback:headroom=0.1``): ``headroom`` (plans keep ``1/(1+headroom)``
    of each worker's capacity free), ``time_limit`` (HiGHS seconds).
    """

    name = "fallback"

    def __init__(self, headroom: float = 0.1, time_limit: float = 10.0) -> None:
        self.headroom = float(headroom)
        self.time_limit = float(time_limit)
        if not 0 <= self.headroom < 10:
            raise InputError("must be in [0, 10)", field="policy.headroom", value=headroom)
        if not 0 < self.time_limit <= 3600:
            raise InputError("must be in (0, 3600] s", field="policy.time_limit", value=time_limit)
        self._planner: FallbackPlanner | None = None

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        self._planner = FallbackPlanner(scenario, self.headroom, time_limit=self.time_limit)

    def decide(self, state: ControlState) -> Plan:
        if self._planner is None or self._planner.scenario is not state.scenario:
            self.reset(state.scenario)
        assert self._planner is not None
        plan, how = self._planner.plan(state.last_rates(), (), state.current_plan)
        if plan is None:
            raise RuntimeError(how)
        return plan


def resolve_policy(spec: str, scenario: Scenario, seed: int | None = 0) -> Policy:
    """Build and reset the policy named by ``spec`` (InputError when unknown or malformed)."""
    name, params = parse_policy_spec(spec)
    if name == "fallback":
        kw = coerce_params(params, {"headroom": float, "time_limit": float})
        policy: Policy = FallbackPolicy(**kw)
    else:
        for module in POLICY_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
        defaults = {"scenario": scenario} if name in SCENARIO_AWARE else {}
        try:
            policy = get_policy(spec, **defaults)
        except InputError as exc:
            if "unknown policy" in exc.reason:
                raise InputError(
                    exc.reason.replace("choose from ", "choose from fallback, ", 1)
                    if "choose from " in exc.reason
                    else f"{exc.reason}; 'fallback' is always available",
                    field=Param.POLICY,
                    value=spec,
                ) from None
            raise
    if getattr(policy, "clairvoyant", False):
        raise InputError(
            "this policy reads the future trace (a reference for offline comparisons); it "
            "cannot run online",
            field=Param.POLICY,
            value=spec,
        )
    policy.reset(scenario, seed)
    return policy
