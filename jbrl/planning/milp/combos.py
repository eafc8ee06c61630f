"""Which variant combinations the MILP may choose among.

A combination is one variant per operator with its end-to-end accuracy (a row of the scenario's
accuracy table). :func:`allowed_combinations` keeps those a request admits (fixed variants, the
most accurate ones only, accuracy at least the target); :func:`prune_dominated` drops those
another one makes useless, which shrinks the model without changing its optimum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jbrl.errors import InputError
from jbrl.scenario.model import Scenario

Combo = tuple[dict[str, str], float]
"""(operator -> variant, end-to-end accuracy)."""


def allowed_combinations(
    scenario: Scenario,
    target: float,
    variants: Mapping[str, str],
    most_accurate: bool,
) -> list[Combo]:
    """Combinations with the ``variants`` fixed, only the most accurate ones when
    ``most_accurate``, and accuracy at least ``target``; a fixed variant the scenario does not
    know raises :class:`InputError`."""
    combos = list(scenario.variant_combinations())
    for op, var in variants.items():
        if op not in scenario.operator_map or var not in scenario.operator_map[op].variants:
            raise InputError("unknown operator or variant", field=f"variants.{op}", value=var)
    combos = [c for c in combos if all(c[0][o] == v for o, v in variants.items())]
    if most_accurate and combos:
        best = max(a for _, a in combos)
        combos = [c for c in combos if c[1] >= best - 1e-12]
    return [c for c in combos if c[1] >= target - 1e-9]


def prune_dominated(
    scenario: Scenario,
    combos: list[Combo],
    workers: Sequence[str],
    rates: Mapping[tuple[str, str], np.ndarray] | None = None,
) -> list[Combo]:
    """Drop combinations another one dominates: for every operator its variant has at least
    the capacity on every worker in ``workers`` and messages no larger on every out-edge. Any
    plan with the dominated combination works, at no higher cost, with the dominating one, so
    the optimum is unchanged. Among equivalent combinations the most accurate is kept.

    ``rates``: instead of capacities, the rates to compare per (operator, variant) (arrays of
    one length per operator, e.g. SLO-safe rates per worker group, batch size and level)."""
    if len(combos) < 2:
        return combos
    ops = [o.name for o in scenario.operators]
    index = {o: {v: i for i, v in enumerate(scenario.operator_map[o].variants)} for o in ops}
    better = {o: _variant_dominance(scenario, o, workers, rates) for o in ops}
    m = np.array([[index[o][a[o]] for o in ops] for a, _ in combos])
    acc = np.array([c[1] for c in combos])
    rank = np.lexsort((np.arange(len(combos)), -acc))  # most accurate first
    pos = np.empty(len(combos), dtype=int)
    pos[rank] = np.arange(len(combos))
    keep = []
    for i in range(len(combos)):
        dom = np.ones(len(combos), dtype=bool)
        back = np.ones(len(combos), dtype=bool)
        for k, o in enumerate(ops):
            dom &= better[o][m[:, k], m[i, k]]
            back &= better[o][m[i, k], m[:, k]]
        dom[i] = False
        beaten = dom & (~back | (pos < pos[i]))
        if not beaten.any():
            keep.append(combos[i])
    return keep


def _variant_dominance(
    scenario: Scenario,
    op: str,
    workers: Sequence[str],
    rates: Mapping[tuple[str, str], np.ndarray] | None,
) -> np.ndarray:
    """``better[a, b]``: variant a of ``op`` is at least as good as variant b (capacity on every
    worker - or each of ``rates`` - at least b's, message on every out-edge at most b's)."""
    names = scenario.operator_map[op].variants
    if rates is None:
        caps = np.array([[scenario.capacity(op, v, w) for w in workers] for v in names])
    else:
        caps = np.array([rates[(op, v)] for v in names])
    kbs = np.array([[e.message_kb_for(v) for e in scenario.out_edges[op]] for v in names]).reshape(
        len(names), -1
    )
    dominance: np.ndarray = np.all(caps[:, None, :] >= caps[None, :, :], axis=2) & np.all(
        kbs[:, None, :] <= kbs[None, :, :], axis=2
    )
    return dominance


def used_variants(scenario: Scenario, combos: list[Combo]) -> dict[str, list[str]]:
    """Per operator, the variants some combination uses (in the scenario's variant order)."""
    used: dict[str, list[str]] = {}
    for o in scenario.operators:
        seen = {a[o.name] for a, _ in combos}
        used[o.name] = [v for v in o.variants if v in seen]
    return used


def chosen_combo(combos: list[Combo], z: list[int], values: np.ndarray) -> Combo:
    """The combination whose choice column ``z`` is largest in ``values`` (the only one when the
    model has no choice columns)."""
    return combos[int(np.argmax([values[j] for j in z]))] if z else combos[0]
