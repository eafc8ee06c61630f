"""Reading HiGHS's answer: the solve status, and the solution as a :class:`Plan`.

The model counts workers per group; :func:`extract_plan` picks the members (keeping those that
already run the same variant in the current plan, then unused ones in scenario order), gives them
equal rates, and splits group-to-group flows into worker-to-worker flows (:func:`transport`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import highspy
import numpy as np

from jbrl.planning.base import Status
from jbrl.planning.milp.combos import chosen_combo
from jbrl.planning.milp.layout import held_by_worker
from jbrl.planning.milp.model import BuiltModel
from jbrl.planning.plan import Flow, Plan, WorkerShare
from jbrl.scenario.model import Scenario

VALUE_TOL = 1e-9  # flows / rates below this are solver noise

Served = dict[str, list[tuple[str, float, int]]]
"""operator -> [(worker, req/s, batch size)]."""
ByGroupOp = dict[tuple[int, str], list[tuple[str, float]]]
"""(group index, operator) -> [(worker, req/s)]."""


def solve_status(h: highspy.Highs, is_mip: bool) -> tuple[Status | None, float | None]:
    """("optimal" | "feasible", MIP gap) when HiGHS has a plan; (None, None) otherwise."""
    ms = h.getModelStatus()
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    gap: float | None = float(info.mip_gap) if is_mip else 0.0
    if gap is not None and not math.isfinite(gap):
        gap = None
    if ms == highspy.HighsModelStatus.kOptimal:
        return "optimal", gap
    if ms in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        return None, None
    if has_solution:
        return "feasible", gap
    return None, None


def extract_plan(
    scenario: Scenario, built: BuiltModel, values: np.ndarray, current: Plan | None
) -> tuple[Plan, int]:
    """The plan in ``values`` and how many workers must load a model they do not hold."""
    assignment = dict(chosen_combo(built.combos, built.z, values)[0])
    held = held_by_worker(scenario, current) if current is not None else {}
    order = {w.name: i for i, w in enumerate(scenario.workers)}
    served, by_group_op, changed = _assign_members(built, values, held, order)
    worker_assignment = {
        o: [
            worker_share(w, r, b)
            for w, r, b in sorted(served.get(o, []), key=lambda t: order[t[0]])
        ]
        for o in scenario.topo_order
        if served.get(o)
    }
    routing = _routing(scenario, built, values, served, by_group_op)
    return Plan(assignment, worker_assignment, routing, {}), changed


def _assign_members(
    built: BuiltModel,
    values: np.ndarray,
    held: Mapping[str, tuple[str, str]],
    order: Mapping[str, int],
) -> tuple[Served, ByGroupOp, int]:
    """Which members of each group serve what, in which batch size, and at which rate (equal
    per member)."""
    per_group: dict[int, list[tuple[str, str, int, int, float]]] = {}
    for (gi, o, v, b), col in built.x.items():
        count = int(round(values[col]))
        rate = float(values[built.r[(gi, o, v, b)]])
        if count <= 0 or rate <= VALUE_TOL:
            continue
        per_group.setdefault(gi, []).append((o, v, b, count, rate))
    served: Served = {}
    by_group_op: ByGroupOp = {}
    changed = 0
    for gi, items in per_group.items():
        free = list(built.groups[gi].members)
        chosen: dict[tuple[str, str, int], list[str]] = {}
        for o, v, b, count, _ in items:  # keep members that already hold (o, v)
            keep = [w for w in free if held.get(w) == (o, v)][:count]
            chosen[(o, v, b)] = keep
            free = [w for w in free if w not in keep]
        free.sort(key=lambda w: (w in held, order[w]))
        for o, v, b, count, rate in items:
            need = count - len(chosen[(o, v, b)])
            chosen[(o, v, b)] += free[:need]
            free = free[need:]
            changed += need
            for w in chosen[(o, v, b)]:
                served.setdefault(o, []).append((w, rate / count, b))
                by_group_op.setdefault((gi, o), []).append((w, rate / count))
    return served, by_group_op, changed


def _routing(
    scenario: Scenario,
    built: BuiltModel,
    values: np.ndarray,
    served: Served,
    by_group_op: ByGroupOp,
) -> list[Flow]:
    """Source flows (to every worker of the target, what it serves), then operator flows."""
    routing: list[Flow] = []
    for e in scenario.edges:
        u, v = e.source, e.target
        if u in scenario.source_map:
            routing += [Flow((u, v), u, w, r) for w, r, _b in served.get(v, [])]
    for ei, e in enumerate(scenario.edges):
        if e.source in scenario.source_map:
            continue
        pair_flow: dict[tuple[int, int], float] = {}
        for (fe, gi, hi, _cls), col in built.f.items():
            if fe == ei and values[col] > VALUE_TOL:
                pair_flow[(gi, hi)] = pair_flow.get((gi, hi), 0.0) + float(values[col])
        routing += transport(e.source, e.target, e.ratio, pair_flow, by_group_op)
    return routing


def worker_share(worker: str, rate: float, batch: int) -> WorkerShare:
    """A plan's share of one worker, in batches of at most ``batch`` requests."""
    return WorkerShare(worker, rate, batch)


def transport(
    u: str,
    v: str,
    ratio: float,
    pair_flow: Mapping[tuple[int, int], float],
    by_group_op: Mapping[tuple[int, str], list[tuple[str, float]]],
) -> list[Flow]:
    """Split group-to-group flows into worker-to-worker flows (north-west corner fill).

    Every receiver gets exactly what it serves; no sender sends more than ratio * what it serves
    (up to solver noise). All pairs of one group pair cost the same, so any split is optimal.
    """
    send_left: dict[int, list[list[Any]]] = {}
    recv_left: dict[int, list[list[Any]]] = {}
    flows: dict[tuple[str, str], float] = {}
    for (gi, hi), amount in sorted(pair_flow.items(), key=lambda t: (t[0][1], t[0][0])):
        senders = send_left.setdefault(
            gi, [[w, r * ratio] for w, r in by_group_op.get((gi, u), [])]
        )
        receivers = recv_left.setdefault(hi, [[w, r] for w, r in by_group_op.get((hi, v), [])])
        if not senders or not receivers:
            continue
        left = amount
        si = ri = 0
        while left > VALUE_TOL:
            while si < len(senders) - 1 and senders[si][1] <= VALUE_TOL:
                si += 1
            while ri < len(receivers) - 1 and receivers[ri][1] <= VALUE_TOL:
                ri += 1
            q = min(left, max(senders[si][1], 0.0), max(receivers[ri][1], 0.0))
            if q <= VALUE_TOL:  # solver noise: the last sender/receiver takes the remainder
                q = left
            key = (senders[si][0], receivers[ri][0])
            flows[key] = flows.get(key, 0.0) + q
            senders[si][1] -= q
            receivers[ri][1] -= q
            left -= q
    return [Flow((u, v), a, b, q) for (a, b), q in flows.items() if q > VALUE_TOL]
