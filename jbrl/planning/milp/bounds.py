"""What the infrastructure can reach: the largest sustainable rate and, for a request that
cannot be met, why (with numbers).

:class:`MaxRate` is what :meth:`~jbrl.planning.milp.MilpPlanner.max_rate` returns;
:func:`explain_infeasible` builds the ``reason`` of an infeasible :class:`PlanResult` from the
best reachable accuracy and the largest uniform scale of the requested rates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jbrl.planning.base import Status
from jbrl.scenario.model import Scenario


@dataclass
class MaxRate:
    """Largest uniform scale of ``base_rates`` the infrastructure sustains at ``accuracy``."""

    scale: float
    rates: dict[str, float]
    base_rates: dict[str, float]
    accuracy: float
    status: Status
    solve_time_s: float
    model_assignment: dict[str, str] = field(default_factory=dict)
    latency_bound_ms: float | None = None
    """The latency bound the rate is sustained within (None: capacity only)."""
    attainment: float | None = None
    """The attainment target it is sustained at (with a bound)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_bound_ms": self.latency_bound_ms,
            "attainment_target": self.attainment,
            "status": self.status,
            "accuracy": self.accuracy,
            "max_rate_scale": self.scale,
            "max_rates": self.rates,
            "base_rates": self.base_rates,
            "model_assignment": self.model_assignment,
            "solve_time_s": self.solve_time_s,
        }


class RateProbe(Protocol):
    """What :func:`explain_infeasible` asks of a planner (a :class:`MilpPlanner`)."""

    max_util: float
    variants: dict[str, str]
    most_accurate: bool

    def max_rate(
        self,
        scenario: Scenario,
        accuracy: float | None = None,
        rates: Mapping[str, float] | None = None,
    ) -> MaxRate: ...


def explain_infeasible(
    scenario: Scenario,
    rates: Mapping[str, float],
    target: float,
    probe: RateProbe,
    message: str | None = None,
) -> dict[str, Any]:
    """Why a request cannot be met, with numbers: the best reachable accuracy and the largest
    uniform scale of the requested rates ``probe`` sustains at the target accuracy (or, when
    the target is out of reach, at the best reachable accuracy). ``message`` is the text when
    neither accuracy nor capacity explains it."""
    combos = list(scenario.variant_combinations())
    if probe.variants:
        combos = [c for c in combos if all(c[0][o] == v for o, v in probe.variants.items())]
    best = max((a for _, a in combos), default=-math.inf)
    at = best if probe.most_accurate or target > best + 1e-9 else target
    mr = probe.max_rate(scenario, at, rates) if math.isfinite(at) else None
    scale = mr.scale if mr is not None else 0.0
    if target > best + 1e-9:
        text = (
            f"accuracy {target:g} is above the best reachable {best:g} "
            f"({scenario.accuracy.metric}); at {best:g} the infrastructure sustains "
            f"{scale:.4g}x the requested rates"
        )
    elif scale < 1.0 - 1e-6:
        shown = ", ".join(f"{s}={v:.4g}" for s, v in (mr.rates if mr else {}).items())
        text = (
            f"the requested rates need more capacity than the workers have: at accuracy "
            f"{at:g} they sustain at most {scale:.4g}x the requested rates ({shown} req/s)"
        )
    else:
        text = message or "no plan meets every constraint"
    return {
        "message": text,
        "proven": True,
        "accuracy_target": target,
        "best_reachable_accuracy": best if math.isfinite(best) else None,
        "max_rate_accuracy": at if math.isfinite(at) else None,
        "max_rate_scale": scale,
        "max_rates": dict(mr.rates) if mr is not None else {},
        "requested_rates": dict(rates),
        "max_util": probe.max_util,
    }
