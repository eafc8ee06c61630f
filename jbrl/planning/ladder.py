"""Build the plan ladder of :mod:`jbrl.envs.ladder` with the MILP.

One MILP solve per load level (``step`` x the nominal rates, from ``step`` up to the largest
sustainable scale): rung ``k`` is the cheapest plan for level ``k``. A small reconfiguration
penalty against the previous rung breaks the MILP's many ties toward plans that *extend* the
rung below (same combination, the same workers plus some), so moving one rung up loads only the
added workers. Then :class:`~jbrl.envs.ladder.PlanLadder` keeps the rungs no other rung
dominates (more capacity for no more dollars).
"""

from __future__ import annotations

import numpy as np

from jbrl.envs.codec import ActionCodec, PlanSignature, ServingSpec
from jbrl.envs.ladder import PlanLadder
from jbrl.scenario.model import Scenario

TIE_BREAK = 1e-3
"""$/hour per worker that must load a model the rung below does not hold (a tie-breaker: far
below any worker's price, so it never buys a dearer plan)."""


def build_ladder(
    scenario: Scenario,
    accuracy: float | None = None,
    step: float = 0.05,
    top: float | None = None,
    time_limit: float = 10.0,
) -> PlanLadder:
    """MILP rungs every ``step`` x nominal up to ``top`` (default: the largest sustainable
    scale, :func:`jbrl.planning.milp.max_rate`)."""
    from jbrl.planning import get_planner
    from jbrl.planning.milp import max_rate

    spec = ServingSpec(scenario, accuracy)
    codec = ActionCodec(spec)
    if top is None:
        top = max_rate(scenario, spec.accuracy).scale
    planner = get_planner("milp", time_limit=time_limit, reconfig_penalty=TIE_BREAK)
    levels = list(np.arange(step, top + 1e-9, step))
    if not levels or levels[-1] < top - 1e-6:
        levels.append(top)
    rungs: list[PlanSignature] = []
    prev = None
    for s in levels:
        rates = spec.nominal * float(s)
        res = planner.plan(
            scenario,
            rates=dict(zip(spec.sources, rates.tolist(), strict=True)),
            accuracy=spec.accuracy,
            current_plan=prev,
        )
        if not res.feasible:
            break
        sig = codec.canonical_signature(res.plan)
        rungs.append(sig)
        prev = codec.plan_of(sig, rates)
    if not rungs:  # not even the lowest level: the greedy ladder still gives a valid action set
        return PlanLadder.greedy(spec)
    return PlanLadder(spec, rungs)
