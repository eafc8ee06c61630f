"""The online decision interface: every control interval a :class:`Policy` turns what the system
reports (:class:`ControlState`) into the plan to run next.

Planners (:mod:`jbrl.planning.base`) answer "what is the cheapest plan for this load"; policies
answer "what should run in the next interval, given what has happened". MILP-reactive,
MILP-hysteresis, MILP-oracle, MILP-static-peak, the JellyBean heuristic, Ray Serve's autoscaler
and PPO all implement this one interface, so the evaluator, the RL environment's baselines and
the online controller drive them the same way (Park's ``get_action(obs)`` shape).

Policies are named with parameters in the name: ``milp-reactive:headroom=0.2``,
``ppo:path=runs/x/model.zip``, ``milp-hysteresis:headroom=0.1:down_after=5``; see
:func:`parse_policy_spec` and :func:`get_policy`. Every policy takes ``shield=on|off|<margin>``:
the policy behind the SLO shield (:mod:`jbrl.agents.shield`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jbrl.errors import InputError, Param
from jbrl.planning.plan import Plan
from jbrl.registry import resolve_factory
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace
from jbrl.sim.base import IntervalMetrics
from jbrl.sim.rollout import Decide, DecisionPoint


@dataclass
class ControlState:
    """What a policy may know when it decides at time ``time_s``.

    * ``rate_history``: observed mean source rates (req/s) of past intervals, oldest first; the
      last entry is the interval that just ended. Empty at the first decision.
    * ``last_metrics``: the simulator's or backend's report of the interval that just ended.
    * ``current_plan``: the plan running now (None before the first decision).
    * ``lookahead``: the true trace, given only to clairvoyant reference policies (MILP-oracle);
      deployable policies must not read it.
    """

    scenario: Scenario
    time_s: float
    interval_s: float
    current_plan: Plan | None = None
    rate_history: list[dict[str, float]] = field(default_factory=list)
    last_metrics: IntervalMetrics | None = None
    lookahead: Trace | None = None

    @classmethod
    def at(
        cls, point: DecisionPoint, scenario: Scenario, lookahead: Trace | None = None
    ) -> ControlState:
        """The state of the run loop's decision point (:func:`jbrl.sim.rollout.rollout`)."""
        return cls(
            scenario,
            point.time_s,
            point.interval_s,
            point.plan,
            point.history,
            point.last,
            lookahead,
        )

    def last_rates(self) -> dict[str, float]:
        """The last observed rates, or the scenario's nominal rates before any observation."""
        if self.rate_history:
            return dict(self.rate_history[-1])
        return self.scenario.nominal_rates()


class Policy(ABC):
    """Decides the plan for the next interval. Subclasses set ``name`` and implement
    :meth:`decide`; :meth:`reset` clears any memory between runs."""

    name: str = "policy"
    #: True for reference policies that read ``ControlState.lookahead`` (not deployable).
    clairvoyant: bool = False

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:  # noqa: B027
        """Forget the previous run (default: nothing to forget)."""

    @abstractmethod
    def decide(self, state: ControlState) -> Plan:
        """The plan to run from ``state.time_s`` for the next ``state.interval_s`` seconds."""


def policy_decider(policy: Policy, scenario: Scenario, trace: Trace) -> Decide:
    """``policy`` as the decision maker of :func:`jbrl.sim.rollout.rollout` on ``trace``
    (which only clairvoyant policies see, as ``ControlState.lookahead``). Call
    ``policy.reset`` before the run."""
    look = trace if policy.clairvoyant else None

    def decide(point: DecisionPoint) -> Plan:
        return policy.decide(ControlState.at(point, scenario, look))

    return decide


def parse_policy_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"milp-reactive:headroom=0.2"`` -> ``("milp-reactive", {"headroom": "0.2"})``.

    A value may contain ``:`` only as the last parameter (``ppo:path=C:/x.zip`` is not
    supported; use a relative path).
    """
    parts = spec.strip().split(":")
    name = parts[0].strip()
    if not name:
        raise InputError("empty policy name", field=Param.POLICY, value=spec)
    params: dict[str, str] = {}
    for p in parts[1:]:
        if "=" not in p:
            raise InputError(
                "policy parameters are written key=value, e.g. milp-reactive:headroom=0.2",
                field=Param.POLICY,
                value=spec,
            )
        k, v = p.split("=", 1)
        params[k.strip()] = v.strip()
    return name, params


SCENARIO_AWARE = {"ppo"}
"""Policies whose factory takes the scenario (``ppo`` alone loads the scenario's shipped model
and checks its files against the scenario)."""

PolicyFactory = Callable[..., Policy]
_POLICIES: dict[str, PolicyFactory | str] = {}


def register_policy(name: str, factory: PolicyFactory | str) -> None:
    """Register a policy factory (or a lazy ``"module:attr"`` path) under ``name``."""
    _POLICIES[name] = factory


def policy_names() -> list[str]:
    return sorted(_POLICIES)


def get_policy(spec: str, **defaults: Any) -> Policy:
    """Build a policy from its spec string; parameters are passed to the factory as strings
    converted by the factory itself (see each policy's docstring)."""
    name, params = parse_policy_spec(spec)
    if name not in _POLICIES:
        raise InputError(
            f"unknown policy (choose from {', '.join(policy_names())})",
            field=Param.POLICY,
            value=spec,
        )
    from jbrl.agents.shield import SHIELD_PARAM, with_shield

    factory = resolve_factory(_POLICIES[name])
    shield = {SHIELD_PARAM: params.pop(SHIELD_PARAM)} if SHIELD_PARAM in params else {}
    kwargs: dict[str, Any] = {**defaults, **params}
    try:
        policy = factory(**kwargs)
    except TypeError as exc:
        raise InputError(
            f"bad parameter for policy {name!r}: {exc}", field=Param.POLICY, value=spec
        ) from None
    return with_shield(policy, shield)


def coerce_params(params: Mapping[str, Any], types: Mapping[str, type]) -> dict[str, Any]:
    """Convert string parameters to the given types, with an InputError naming the bad one."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k not in types:
            raise InputError(
                f"unknown parameter (known: {', '.join(types)})", field=f"policy.{k}", value=v
            )
        t = types[k]
        try:
            out[k] = t(v) if not isinstance(v, t) else v
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"must be {t.__name__}", field=f"policy.{k}", value=v) from None
        if isinstance(out[k], float) and not math.isfinite(out[k]):
            raise InputError("must be a finite number", field=f"policy.{k}", value=v)
    return out
