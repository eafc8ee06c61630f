"""The policies of an evaluation, from their specs: parse a list, build each, probe one.

A spec is a registered policy name with parameters after colons (``milp-reactive:headroom=0.2``,
:func:`jbrl.agents.policy.parse_policy_spec`). Bad input (an unknown name, a bad parameter, a
missing model file) raises :class:`~jbrl.errors.InputError` before any run starts; a policy that
fails to build for another reason is reported in its rows instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from jbrl.agents.policy import ControlState, Policy, get_policy, parse_policy_spec
from jbrl.errors import InputError, Param
from jbrl.scenario.model import Scenario

#: policies whose factory takes the scenario (``ppo`` alone loads the scenario's shipped model)
SCENARIO_AWARE = {"ppo"}


def parse_policies(text: str | Sequence[str]) -> list[str]:
    """``"a,b:x=1"`` (or a list of such strings) -> ``["a", "b:x=1"]``, duplicates dropped."""
    items = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        for spec in item.split(","):
            spec = spec.strip()
            if spec and spec not in out:
                out.append(spec)
    if not out:
        raise InputError("no policy given", field=Param.POLICIES, value=text)
    return out


def build_policies(specs: Sequence[str], scenario: Scenario) -> dict[str, Policy | str]:
    """spec -> policy, or an error text for a policy that fails for another reason than bad
    input (bad input — an unknown name, a bad parameter, a missing model file — raises)."""
    out: dict[str, Policy | str] = {}
    for spec in specs:
        try:
            aware = parse_policy_spec(spec)[0] in SCENARIO_AWARE
            out[spec] = get_policy(spec, **({"scenario": scenario} if aware else {}))
        except InputError as exc:
            if exc.field is not Param.POLICY:
                raise
            # the spec came from --policies: name that option, not --policy
            raise InputError(
                exc.reason, file=exc.file, field=Param.POLICIES, value=exc.value
            ) from None
        except Exception as exc:
            out[spec] = f"{type(exc).__name__}: {exc}"
    return out


def probe_policy(spec: str, scenario: Scenario, interval: float = 60.0) -> str | None:
    """None when ``spec`` builds and makes a first decision on ``scenario``; else why not (used
    to include the shipped PPO policy only when there is one that fits the scenario)."""
    try:
        policy = build_policies([spec], scenario)[spec]
        if isinstance(policy, str):
            return policy
        policy.reset(scenario, 0)
        policy.decide(ControlState(scenario, 0.0, interval))
    except Exception as exc:
        return exc.reason if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
    return None
