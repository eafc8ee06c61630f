"""The greedy planner: a cheap, solver-free plan that covers a load (the RL environment's
starting plan when no MILP is asked for, and the rungs of its default plan ladder).

For every usable variant combination and two orders of preference (price per req/s; lowest
tier first, then price per req/s), operators in topological order take the first idle workers
that may run them (:class:`~jbrl.planning.tables.ServingSpec`: a profile, no backward traffic)
until they cover the demand at the target rates; the cheapest assignment that covers it (else
the least short) wins. Loads are split over each operator's workers in proportion to capacity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jbrl.planning.plan import Plan
from jbrl.planning.tables import ServingSpec

SHORTFALL_PRICE = 1e6
"""$/hour charged per req/s of uncovered demand when ranking assignments (coverage first)."""


def greedy_assignment(
    spec: ServingSpec, target_rates: np.ndarray, combos: Sequence[int] | None = None
) -> tuple[int, list[int]] | None:
    """(combination, operator index per worker, -1 idle) of the greedy plan for
    ``target_rates`` (module docstring); None when no combination can be placed greedily.
    ``combos``: only these combinations (indices into ``spec.combos``; default: every usable
    one)."""
    demand = spec.demand(np.asarray(target_rates, dtype=float))
    best: tuple[float, int, list[int]] | None = None
    usable = np.flatnonzero(spec.combo_ok)
    if combos is not None:
        usable = np.array([c for c in usable if int(c) in set(combos)], dtype=int)
    for c in usable:
        for by_tier in (False, True):
            assign = _fill_in_order(spec, int(c), demand, by_tier)
            if assign is None:
                continue
            short = float(np.maximum(demand - spec.capacity(int(c), assign), 0.0).sum())
            key = spec.compute_price(assign) + SHORTFALL_PRICE * short
            if best is None or key < best[0]:
                best = (key, int(c), assign)
    return None if best is None else (best[1], best[2])


def greedy_plan(
    spec: ServingSpec, target_rates: np.ndarray, combos: Sequence[int] | None = None
) -> Plan | None:
    """The greedy plan for ``target_rates`` (an array in ``spec.sources`` order), rates split
    in proportion to capacity at those rates; None when nothing can be placed greedily.
    ``combos``: only these combinations (as :func:`greedy_assignment`)."""
    got = greedy_assignment(spec, target_rates, combos)
    if got is None:
        return None
    combo, assign = got
    return spec.plan(combo, assign, np.asarray(target_rates, dtype=float), "greedy")


def _fill_in_order(
    spec: ServingSpec, c: int, demand: np.ndarray, by_tier: bool
) -> list[int] | None:
    """Operators in topological order take idle workers in preference order until covered."""
    cap = spec.cap[c]
    assign = np.full(len(spec.workers), -1, dtype=int)
    top = np.full(len(spec.ops), -1, dtype=int)
    for o in range(len(spec.ops)):
        lo = int(spec.min_tier[o])
        if spec.forbid_backward:
            lo = max([lo, *(int(top[u]) for u in spec.op_inputs[o])])
        ok = (assign < 0) & (cap[:, o] > 0) & spec.allowed[:, o] & (spec.tier >= lo)
        order = sorted(
            np.flatnonzero(ok),
            key=lambda w: (spec.tier[w] if by_tier else 0, spec.price[w] / cap[w, o]),
        )
        got = 0.0
        for w in order:
            assign[w] = o
            got += cap[w, o]
            if got >= demand[o]:
                break
        if not np.any(assign == o):
            return None
        top[o] = int(spec.tier[assign == o].max())
    return [int(x) for x in assign]
