"""The rungs of a plan ladder, solved with the MILP (the action table of the RL environment's
``action: ladder``, :mod:`jbrl.envs.ladder`).

One MILP solve per load level (``step`` x the nominal rates, from ``step`` up to the largest
sustainable scale): rung ``k`` is the cheapest plan for level ``k`` - within the scenario's
latency SLO where it has a bound (the SLO-aware MILP and its max rate), so that a rung's level
is the load it serves within the SLO, not its raw capacity. A small reconfiguration
penalty against the previous rung breaks the MILP's many ties toward plans that *extend* the
rung below (same combination, the same workers plus some), so moving one rung up loads only the
added workers. The env's :class:`~jbrl.envs.ladder.PlanLadder` then keeps the rungs no other
rung dominates (more capacity for no more dollars).

:func:`combo_ladder_plans` builds one such ladder per variant combination (the env's
``action: combo_ladder``, :mod:`jbrl.envs.combo_ladder`): the MILP's own combinations after its
dominance pruning (:func:`admitted_combinations`), each ladder solved with that combination's
variants fixed, so the agent chooses the combination and the solver only the placement.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from jbrl.planning.plan import Plan
from jbrl.planning.tables import ServingSpec

TIE_BREAK = 1e-3
"""$/hour per worker that must load a model the rung below does not hold (a tie-breaker: far
below any worker's price, so it never buys a dearer plan)."""


def ladder_levels(top: float, step: float = 0.05) -> list[float]:
    """Load levels (multiples of the nominal rates) every ``step`` up to ``top``, ``top``
    included."""
    levels = [float(x) for x in np.arange(step, top + 1e-9, step)]
    if not levels or levels[-1] < top - 1e-6:
        levels.append(top)
    return levels


def ladder_plans(
    spec: ServingSpec,
    step: float = 0.05,
    top: float | None = None,
    time_limit: float = 10.0,
    latency_model: str = "queueing",
    variants: Mapping[str, str] | None = None,
) -> list[tuple[float, Plan]]:
    """(level, plan): MILP rungs every ``step`` x nominal up to ``top`` (default: the largest
    sustainable scale, :func:`jbrl.planning.milp.max_rate`), lowest first, each re-expressed
    with its load split in proportion to capacity at its level; stops at the first infeasible
    level (empty when not even the lowest is feasible). ``latency_model="none"``: capacity-only
    rungs (the ladders policies trained before SLO-aware planning use). Rungs are planned at
    batch 1 (``max_batch=1``): the ladder's codec (combination, assignment) has no batch size,
    so a rung re-expressed through it must not rely on batching. ``variants``: fix these
    operators' variants (one combination's ladder: every rung, and ``top``, within it)."""
    from jbrl.planning import get_planner
    from jbrl.planning.milp import max_rate

    scenario = spec.scenario
    if top is None:
        top = max_rate(
            scenario, spec.accuracy, latency_model=latency_model, max_batch=1, variants=variants
        ).scale
    if not top > 0:
        return []
    rungs: list[tuple[float, Plan]] = []
    prev: Plan | None = None
    for s in ladder_levels(top, step):
        rates = spec.nominal * s
        planner = get_planner(
            "milp",
            time_limit=time_limit,
            reconfig_penalty=TIE_BREAK,
            current_plan=prev,
            latency_model=latency_model,
            max_batch=1,
            variants=variants,
        )
        res = planner.plan(scenario, rates=spec.rates_dict(rates), accuracy=spec.accuracy)
        if not res.feasible:
            break
        combo, assign = spec.index_of(res.plan)
        prev = spec.plan(combo, assign, rates, "milp-ladder")
        rungs.append((s, prev))
    return rungs


def admitted_combinations(spec: ServingSpec, latency_model: str = "queueing") -> list[int]:
    """Indices (into ``spec.combos``) of the variant combinations the MILP plans over for
    ``spec``'s scenario and accuracy target: those meeting the target, less those another one
    dominates (:func:`jbrl.planning.milp.prune_dominated`; with a latency bound compared on
    SLO-safe rates at batch 1, as the SLO-aware model does). Combinations the codec cannot
    place (``spec.combo_ok``) are left out. Scenario order."""
    from jbrl.planning.milp.combos import allowed_combinations
    from jbrl.planning.milp.layout import plan_layout
    from jbrl.planning.milp.planner import MilpPlanner
    from jbrl.planning.milp.slo import SloTarget

    scenario = spec.scenario
    planner = MilpPlanner(latency_model=latency_model, max_batch=1)
    slo = None
    if planner.latency_aware(scenario):
        slo = SloTarget.of(scenario, scenario.demand(scenario.nominal_rates()), 1.0)
    combos = allowed_combinations(scenario, spec.accuracy, {}, False)
    layout = plan_layout(scenario, combos, None, planner.model_options(slo))
    kept = {tuple(a[o] for o in spec.ops) for a, _ in layout.combos}
    return [
        c
        for c, a in enumerate(spec.combos)
        if tuple(a[o] for o in spec.ops) in kept and spec.combo_ok[c]
    ]


def combo_ladder_plans(
    spec: ServingSpec,
    step: float = 0.05,
    time_limit: float = 10.0,
    latency_model: str = "queueing",
    processes: int = 1,
) -> list[tuple[int, list[tuple[float, Plan]]]]:
    """(combination index, its rungs) for every admitted combination
    (:func:`admitted_combinations`) with a feasible plan at its lowest level: each a
    :func:`ladder_plans` ladder with the combination's variants fixed, up to the largest scale
    that combination sustains. A combination without any feasible level is dropped.

    ``processes`` > 1 solves the combinations' ladders in that many *spawned* processes (a
    forked child would inherit HiGHS's thread pool without its threads). The ladders are
    independent of each other, so they are the ones one process builds, in about
    1 / ``processes`` of the wall time when there are enough combinations (the fleet
    scenario's 8 take ~20 min in one process)."""
    combos = admitted_combinations(spec, latency_model)
    args = [(spec, step, None, time_limit, latency_model, spec.combos[c]) for c in combos]
    if processes > 1 and len(combos) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(processes, len(combos)), mp_context=ctx) as pool:
            ladders = [f.result() for f in [pool.submit(ladder_plans, *a) for a in args]]
    else:
        ladders = [ladder_plans(*a) for a in args]
    return [(c, rungs) for c, rungs in zip(combos, ladders, strict=True) if rungs]
