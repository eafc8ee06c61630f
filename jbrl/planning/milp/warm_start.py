"""A start plan as a partial MILP solution: HiGHS begins its search from the plan's integer
choices (the combination and the worker counts) and completes rates and flows itself."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from jbrl.planning.cost import RATE_TOL, evaluate_plan
from jbrl.planning.milp.layout import Key
from jbrl.planning.milp.model import BuiltModel
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario


def warm_start_values(
    scenario: Scenario, built: BuiltModel, start: Plan, rates: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray] | None:
    """(columns, values) of ``start``'s combination and worker counts, or None when the model
    cannot express the plan (its combination was dropped, or it uses a worker, group or variant
    the model has no column for)."""
    variant = {
        o.name: start.model_assignment.get(o.name, o.variants[0]) for o in scenario.operators
    }
    idx = next((i for i, (a, _) in enumerate(built.combos) if a == variant), None)
    if idx is None:
        return None
    report = evaluate_plan(scenario, start, rates)
    gi = {w: g.index for g in built.groups for w in g.members}
    counts: dict[Key, int] = {}
    for op, load in report.operators.items():
        for wl in load.workers:
            if wl.rate > RATE_TOL and wl.worker in gi:
                key = (gi[wl.worker], op, load.variant, 1)
                counts[key] = counts.get(key, 0) + 1
    if any(k not in built.x for k in counts):
        return None
    ub = built.lm.col_upper
    counts = {k: min(c, int(ub[built.x[k]])) for k, c in counts.items()}
    cols: list[int] = []
    vals: list[float] = []
    for i, j in enumerate(built.z):
        cols.append(j)
        vals.append(1.0 if i == idx else 0.0)
    for key, col in built.x.items():
        cols.append(col)
        vals.append(float(counts.get(key, 0)))
    return np.asarray(cols, dtype=np.int32), np.asarray(vals)
