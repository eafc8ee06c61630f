"""Any policy behind the SLO shield (:mod:`jbrl.planning.shield`): the deployment's view of it.

In evaluation the shield is part of the deployment, so it wraps every policy alike (baselines
too): ``get_policy("autoscaler:shield=1.1")`` or ``jbrl evaluate --shield`` give the policy
wrapped in :class:`ShieldedPolicy`; ``shield=on`` uses the default margin
(:data:`~jbrl.planning.shield.DEFAULT_MARGIN`), ``shield=off`` none.
"""

from __future__ import annotations

from typing import Any

from jbrl.agents.policy import ControlState, Policy
from jbrl.errors import InputError, Param
from jbrl.planning.plan import Plan
from jbrl.planning.shield import DEFAULT_MARGIN, ShieldStats, ShieldVerdict, SloShield
from jbrl.scenario.model import Scenario

SHIELD_PARAM = "shield"
"""The policy-spec parameter that asks for the shield (``milp-reactive:shield=on``)."""


def shield_margin(value: str | float | None) -> float | None:
    """The margin a ``shield=`` value asks for (None: no shield); InputError when malformed."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("off", "no", "false", "0", ""):
        return None
    if text in ("on", "yes", "true", "1"):
        return DEFAULT_MARGIN
    try:
        margin = float(text)
    except ValueError:
        margin = float("nan")
    if not margin >= 1.0 or margin == float("inf"):
        raise InputError(
            "shield is on, off or a margin >= 1 (e.g. shield=1.1)",
            field=Param.POLICY,
            value=value,
        )
    return margin


class ShieldedPolicy(Policy):
    """``inner``'s plans, checked by an :class:`~jbrl.planning.shield.SloShield` at the last
    observed rates (:meth:`ControlState.last_rates`) x ``margin`` before they run.

    ``verdicts`` holds the run's verdicts (in decision order); ``stats`` their counts.
    ``cached_solve_s`` passes the inner policy's through (the evaluator adds it to the decision
    time).
    """

    def __init__(self, inner: Policy, margin: float = DEFAULT_MARGIN, time_limit: float = 10.0):
        self.inner = inner
        self.margin = float(margin)
        self.time_limit = float(time_limit)
        self.name = f"{inner.name}+shield"
        self.clairvoyant = inner.clairvoyant
        self._shield: SloShield | None = None
        self.verdicts: list[ShieldVerdict] = []

    @property
    def stats(self) -> ShieldStats:
        return self._shield.stats if self._shield is not None else ShieldStats()

    @property
    def cached_solve_s(self) -> float:
        return float(getattr(self.inner, "cached_solve_s", 0.0))

    def _bind(self, scenario: Scenario) -> SloShield:
        if self._shield is None or self._shield.scenario is not scenario:
            self._shield = SloShield(scenario, self.margin, self.time_limit)
        return self._shield

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        self.inner.reset(scenario, seed)
        self._bind(scenario).reset()
        self.verdicts = []

    def decide(self, state: ControlState) -> Plan:
        wanted = self.inner.decide(state)
        verdict = self._bind(state.scenario).check(wanted, state.last_rates())
        self.verdicts.append(verdict)
        return verdict.plan


def with_shield(policy: Policy, params: dict[str, Any]) -> Policy:
    """``policy`` wrapped when ``params`` holds ``shield=...`` asking for it (the parameter is
    removed from ``params``)."""
    margin = shield_margin(params.pop(SHIELD_PARAM, None))
    return policy if margin is None else ShieldedPolicy(policy, margin)
