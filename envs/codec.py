"""Action encoding shared by :class:`~jbrl.envs.serving.ServingEnv` and the deployed PPO policy
(:mod:`jbrl.agents.ppo`), so both decode exactly the same plans.

* :class:`ServingSpec` - what a scenario fixes: operators, workers, the variant combinations that
  meet the accuracy target, capacities, which worker may run which operator.
* :class:`ActionCodec` - MultiDiscrete action <-> :class:`~jbrl.planning.plan.Plan`, with static masks and
  a documented repair that makes every decoded action a structurally valid plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from jbrl.errors import InfeasibleError
from jbrl.planning.plan import Plan, WorkerShare
from jbrl.scenario.model import Scenario


class ServingSpec:
    """Index tables of one scenario at one accuracy target (built once, read everywhere)."""

    def __init__(self, scenario: Scenario, accuracy: float | None = None) -> None:
        self.scenario = scenario
        self.accuracy = scenario.slo.min_accuracy if accuracy is None else float(accuracy)
        self.ops: list[str] = list(scenario.topo_order)
        self.op_index = {o: i for i, o in enumerate(self.ops)}
        self.workers: list[str] = [w.name for w in scenario.workers]
        self.worker_index = {w: i for i, w in enumerate(self.workers)}
        self.sources: list[str] = [s.name for s in scenario.sources]
        self.nominal = np.array([s.rate for s in scenario.sources], dtype=float)
        self.price = np.array([w.price for w in scenario.workers], dtype=float)
        self.tier = np.array([scenario.worker_tier[w] for w in self.workers], dtype=int)
        nom = scenario.demand()
        self.nominal_demand = np.array([max(nom[o], 1e-9) for o in self.ops], dtype=float)
        combos = [
            (a, acc) for a, acc in scenario.variant_combinations() if acc >= self.accuracy - 1e-9
        ]
        if not combos:
            raise InfeasibleError(
                f"no variant combination of {scenario.name!r} reaches accuracy {self.accuracy:g}",
                {"best_reachable_accuracy": scenario.best_accuracy()},
            )
        self.combos: list[dict[str, str]] = [a for a, _ in combos]
        self.combo_accuracy = np.array([acc for _, acc in combos], dtype=float)
        self.combo_index = {tuple(a[o] for o in self.ops): i for i, a in enumerate(self.combos)}
        nc, nw, no = len(self.combos), len(self.workers), len(self.ops)
        # cap[c, w, o]: req/s worker w sustains for operator o under combination c (0: no profile)
        self.cap = np.zeros((nc, nw, no))
        for c, a in enumerate(self.combos):
            for w, wn in enumerate(self.workers):
                for o, op in enumerate(self.ops):
                    self.cap[c, w, o] = scenario.capacity(op, a[op], wn)
        # lowest tier each operator may run on (backward traffic forbidden: not below its inputs)
        self.min_tier = np.zeros(no, dtype=int)
        self.forbid_backward = scenario.backward_traffic == "forbidden"
        if self.forbid_backward:
            for o, op in enumerate(self.ops):
                lo = 0
                for e in scenario.in_edges[op]:
                    if e.source in scenario.source_map:
                        lo = max(lo, scenario.source_tier[e.source])
                    else:
                        lo = max(lo, int(self.min_tier[self.op_index[e.source]]))
                self.min_tier[o] = lo
        # allowed[w, o]: some combination has a profile for o on w, and w's tier is allowed
        self.allowed = (self.cap.max(axis=0) > 0) & (self.tier[:, None] >= self.min_tier[None, :])
        # a combination is usable when every operator has at least one allowed, profiled worker
        self.combo_ok = np.array(
            [bool(np.all(((self.cap[c] > 0) & self.allowed).any(axis=0))) for c in range(nc)]
        )
        if not self.combo_ok.any():
            raise InfeasibleError(
                f"no variant combination of {scenario.name!r} can be placed on its workers", {}
            )
        self.total_price = float(self.price.sum())
        # edges between operators, for the backward-traffic repair
        self.op_inputs: list[list[int]] = [
            [self.op_index[e.source] for e in scenario.in_edges[op] if e.source in self.op_index]
            for op in self.ops
        ]
        self.coef = scenario.demand_per_unit()
        # interchangeable workers: same type, tier, price and capacities, no link naming them
        named = {lk.source for lk in scenario.links} | {lk.target for lk in scenario.links}
        by_key: dict[tuple, list[int]] = {}
        for w, wn in enumerate(self.workers):
            worker = scenario.worker_map[wn]
            key = (
                (wn,)
                if wn in named
                else (worker.type, int(self.tier[w]), worker.price, self.cap[:, w, :].tobytes())
            )
            by_key.setdefault(key, []).append(w)
        self.groups: list[list[int]] = list(by_key.values())

    def demand(self, rates: np.ndarray) -> np.ndarray:
        """Required rate of every operator (topological order) at source ``rates``."""
        d = self.scenario.demand(dict(zip(self.sources, rates.tolist(), strict=True)))
        return np.array([d[o] for o in self.ops], dtype=float)

    def rates_array(self, rates: Mapping[str, float] | np.ndarray | Sequence[float]) -> np.ndarray:
        if isinstance(rates, Mapping):
            return np.array([float(rates.get(s, 0.0)) for s in self.sources], dtype=float)
        return np.asarray(rates, dtype=float).reshape(len(self.sources))


@dataclass(frozen=True)
class PlanSignature:
    """What identifies a plan for the agent: the combination and each worker's operator
    (``-1`` idle). Rates are not part of it: the codec always splits by capacity."""

    combo: int
    assignment: tuple[int, ...]


class ActionCodec:
    """MultiDiscrete action <-> plan, relative to the plan running now.

    Action ``a`` (all dimensions independent; "keep" is choice 0 of every dimension, so the
    agent holds a decision by default and changes only what it means to change):

    * ``a[0]`` in {0, 1}: 1 keeps the whole current plan (the rest is ignored);
    * ``a[1]`` in [0, n_combos]: 0 keeps the current variant combination, ``1 + c`` switches to
      combination ``c`` (only combinations meeting the accuracy target exist);
    * ``a[2 + w]`` in [0, n_ops + 1]: 0 keeps what worker ``w`` runs, 1 idles it, ``2 + o``
      runs operator ``ops[o]`` (topological order).

    Masks (:meth:`masks`) exclude an operator on a worker without any profile for it or on a tier
    below the operator's inputs (backward traffic), and combinations that cannot be placed. The
    decoder resolves "keep" against the current plan (none: the first usable combination, idle
    workers), then repairs what per-dimension masks cannot express, in this order (counted in
    :attr:`last_repairs`):

    1. a worker chosen for an operator whose *chosen* variant has no profile there idles;
    2. operators are visited in topological order; a worker on a tier below the highest tier of
       any input's workers idles (no backward traffic);
    3. an operator left without workers gets the cheapest idle worker that may run it (price per
       req/s of capacity), else one taken from the operator with the most workers.

    Finally interchangeable workers are matched to the current plan (:meth:`match_current`), so
    a change of counts never reloads a worker that keeps its operator.

    Rates: each worker serves ``capacity * rho`` with ``rho = min(1, demand / total capacity)`` at
    the design rates, i.e. the operator's load is split in proportion to capacity (equal
    utilisation), whatever the load turns out to be.
    """

    KEEP = 0
    IDLE = 1

    def __init__(self, spec: ServingSpec) -> None:
        self.spec = spec
        no, nw = len(spec.ops), len(spec.workers)
        self.nvec = np.array([2, len(spec.combos) + 1] + [no + 2] * nw, dtype=np.int64)
        mask = [np.ones(2, dtype=bool), np.concatenate([[True], spec.combo_ok])]
        for w in range(nw):
            mask.append(np.concatenate([[True, True], spec.allowed[w]]))
        self._mask = np.concatenate(mask)
        self.last_repairs = 0

    # ------------------------------------------------------------------ masks

    def masks(self) -> np.ndarray:
        """Flat boolean mask over all dimensions' choices (MaskablePPO's layout)."""
        return self._mask.copy()

    def mask_of(self, dim: int) -> np.ndarray:
        start = int(self.nvec[:dim].sum())
        return self._mask[start : start + int(self.nvec[dim])]

    # ------------------------------------------------------------------ plan -> action

    def signature(self, plan: Plan) -> PlanSignature:
        """The (combination, assignment) of ``plan`` (combination -1 if not in the table)."""
        spec = self.spec
        key = tuple(
            plan.model_assignment.get(o, spec.scenario.operator_map[o].variants[0])
            for o in spec.ops
        )
        combo = spec.combo_index.get(key, -1)
        assign = [-1] * len(spec.workers)
        for op, shares in plan.worker_assignment.items():
            oi = spec.op_index.get(op)
            if oi is None:
                continue
            for s in shares:
                wi = spec.worker_index.get(s.worker)
                if wi is not None and assign[wi] < 0 and (s.rate is None or s.rate > 0):
                    assign[wi] = oi
        return PlanSignature(combo, tuple(assign))

    def action_for(
        self, sig: PlanSignature, current: PlanSignature | None = None, keep: bool = False
    ) -> np.ndarray:
        """The action that leads from ``current`` to ``sig``: "keep" where nothing changes
        (absolute choices everywhere without ``current``); ``keep`` sets the keep-all flag."""
        a = np.zeros(len(self.nvec), dtype=np.int64)
        a[0] = int(keep)
        same_combo = current is not None and current.combo == sig.combo
        a[1] = self.KEEP if same_combo else 1 + max(sig.combo, 0)
        for w, o in enumerate(sig.assignment):
            if current is not None and same_combo and current.assignment[w] == o:
                a[2 + w] = self.KEEP
            else:
                a[2 + w] = self.IDLE if o < 0 else 2 + o
        return a

    def action_of(self, plan: Plan, keep: bool = False, current: Plan | None = None) -> np.ndarray:
        """The action that decodes to (the canonical form of) ``plan``."""
        cur = self.signature(current) if current is not None else None
        return self.action_for(self.signature(plan), cur, keep)

    def keep_action(self) -> np.ndarray:
        """Keep the current plan."""
        a = np.zeros(len(self.nvec), dtype=np.int64)
        a[0] = 1
        return a

    # ------------------------------------------------------------------ action -> plan

    def decode(
        self,
        action: np.ndarray | Sequence[int],
        design_rates: np.ndarray,
        current: Plan | None = None,
    ) -> Plan:
        """The plan ``action`` describes, repaired to be structurally valid (class docstring)."""
        a = np.asarray(action, dtype=np.int64).reshape(-1)
        if int(a[0]) == 1 and current is not None:
            self.last_repairs = 0
            return current
        cur = self.signature(current) if current is not None else None
        sig, repairs = self.resolve(a, cur)
        self.last_repairs = repairs
        return self.plan_of(sig, design_rates)

    def resolve(self, a: np.ndarray, current: PlanSignature | None) -> tuple[PlanSignature, int]:
        """Absolute, repaired and matched signature of action ``a`` taken from ``current``."""
        a = np.asarray(a, dtype=np.int64).reshape(-1)
        if int(a[0]) == 1 and current is not None and current.combo >= 0:
            return current, 0
        nw = len(self.spec.workers)
        if int(a[1]) == self.KEEP:
            combo = current.combo if current is not None and current.combo >= 0 else -1
        else:
            combo = int(a[1]) - 1
        assign = np.full(nw, -1, dtype=np.int64)
        for w in range(nw):
            x = int(a[2 + w])
            if x == self.KEEP:
                assign[w] = current.assignment[w] if current is not None else -1
            elif x >= 2:
                assign[w] = x - 2
        sig, repairs = self.repair(combo, assign)
        if current is not None:
            sig = self.match_current(sig, current)
        return sig, repairs

    def match_current(self, sig: PlanSignature, current: PlanSignature) -> PlanSignature:
        """``sig`` with interchangeable workers permuted to reload as few models as possible.

        Within a group of identical workers (:attr:`ServingSpec.groups`) only how many run each
        operator matters; a worker that already runs an operator keeps it, and the other
        places go to the group's remaining workers (idle or unneeded ones first). Only when the
        combination stays the same (otherwise every worker reloads anyway).
        """
        if sig.combo != current.combo:
            return sig
        assign = list(sig.assignment)
        for group in self.spec.groups:
            if len(group) < 2:
                continue
            want = [assign[w] for w in group]
            need = {o: want.count(o) for o in set(want) if o >= 0}
            out = dict.fromkeys(group, -1)
            for w in group:  # keep what is loaded already
                o = current.assignment[w]
                if need.get(o, 0) > 0:
                    out[w] = o
                    need[o] -= 1
            free = [w for w in group if out[w] < 0]
            free.sort(key=lambda w: current.assignment[w] in need)  # idle or unneeded first
            for o in sorted(need):
                for _ in range(need[o]):
                    out[free.pop(0)] = o
            for w in group:
                assign[w] = out[w]
        return PlanSignature(sig.combo, tuple(assign))

    def canonical_action(self, action: np.ndarray, current: PlanSignature) -> np.ndarray:
        """The action as the env executes it from ``current``: the keep-all flag when nothing
        changes, else "keep" on every unchanged dimension."""
        sig, _ = self.resolve(action, current)
        if sig == current:
            return self.keep_action()
        return self.action_for(sig, current)

    def repair(self, combo: int, assignment: np.ndarray) -> tuple[PlanSignature, int]:
        """Repairs 1-3 of the class docstring on an absolute (combination, assignment)."""
        spec = self.spec
        no, nw = len(spec.ops), len(spec.workers)
        c = int(combo)
        repairs = 0
        if not (0 <= c < len(spec.combos)) or not spec.combo_ok[c]:
            c = int(np.flatnonzero(spec.combo_ok)[0])
            repairs += 1
        cap = spec.cap[c]
        assign = np.array(assignment, dtype=np.int64).reshape(nw)
        for w in range(nw):
            o = int(assign[w])
            if o < 0:
                continue
            if o >= no or not spec.allowed[w, o] or cap[w, o] <= 0:
                assign[w] = -1  # repair 1
                repairs += 1
        top_tier = np.full(no, -1, dtype=int)
        for o in range(no):
            lo = int(spec.min_tier[o])
            if spec.forbid_backward:
                for u in spec.op_inputs[o]:
                    lo = max(lo, int(top_tier[u]))
            for w in np.flatnonzero(assign == o):
                if spec.tier[w] < lo:
                    assign[w] = -1  # repair 2
                    repairs += 1
            if not np.any(assign == o):
                w = self._fill(assign, o, lo, cap)  # repair 3
                repairs += 1
                assign[w] = o
            top_tier[o] = int(spec.tier[assign == o].max())
        return PlanSignature(c, tuple(int(x) for x in assign)), repairs

    def _fill(self, assign: np.ndarray, o: int, lo: int, cap: np.ndarray) -> int:
        spec = self.spec
        ok = (cap[:, o] > 0) & (spec.tier >= lo) & spec.allowed[:, o]
        cost = np.where(ok, spec.price / np.maximum(cap[:, o], 1e-12), np.inf)
        idle = ok & (assign < 0)
        if idle.any():
            return int(np.argmin(np.where(idle, cost, np.inf)))
        # take from the operator with the most workers (never empties another operator)
        counts = np.bincount(assign[assign >= 0], minlength=len(spec.ops))
        donors = ok & (assign >= 0) & (counts[np.maximum(assign, 0)] > 1)
        if donors.any():
            return int(np.argmin(np.where(donors, cost, np.inf)))
        raise InfeasibleError(f"operator {spec.ops[o]!r} cannot be placed on any free worker", {})

    def plan_of(self, sig: PlanSignature, design_rates: np.ndarray) -> Plan:
        """The plan of a signature, with rates split in proportion to capacity."""
        spec = self.spec
        combo = spec.combos[sig.combo]
        cap = spec.cap[sig.combo]
        demand = spec.demand(design_rates)
        assign = np.array(sig.assignment)
        wa: dict[str, list[WorkerShare]] = {}
        for o, op in enumerate(spec.ops):
            ws = np.flatnonzero(assign == o)
            total = float(cap[ws, o].sum())
            rho = min(1.0, max(1e-3, demand[o] / total)) if total > 0 else 0.0
            wa[op] = [WorkerShare(spec.workers[w], float(cap[w, o] * rho)) for w in ws]
        rates = dict(zip(spec.sources, design_rates.tolist(), strict=True))
        return Plan(dict(combo), wa, None, {"rates": rates, "solver": "ppo-codec"})

    def canonical_signature(self, plan: Plan) -> PlanSignature:
        """The repaired signature of any plan (e.g. a planner's) in this codec's terms."""
        sig = self.signature(plan)
        return self.repair(sig.combo, np.array(sig.assignment))[0]

    def canonical(self, plan: Plan, design_rates: np.ndarray) -> Plan:
        """``plan`` re-expressed as the codec would decode it (capacity-proportional rates)."""
        return self.plan_of(self.canonical_signature(plan), design_rates)

    def capacity(self, sig: PlanSignature) -> np.ndarray:
        """Capacity (req/s) per operator of a signature."""
        cap = self.spec.cap[max(sig.combo, 0)]
        out = np.zeros(len(self.spec.ops))
        for w, o in enumerate(sig.assignment):
            if o >= 0:
                out[o] += cap[w, o]
        return out

    def price(self, sig: PlanSignature) -> float:
        """Compute $/hour of a signature."""
        return float(sum(self.spec.price[w] for w, o in enumerate(sig.assignment) if o >= 0))


def greedy_signature(codec: ActionCodec, target_rates: np.ndarray) -> PlanSignature:
    """A cheap starting plan: for every usable combination and two orders of preference (price
    per req/s; lowest tier first, then price per req/s), operators in topological order take the
    first idle workers until they cover the demand at ``target_rates``; the cheapest plan that
    covers it (else the least short) wins. The env's starting state when no planner is given."""
    spec = codec.spec
    demand = spec.demand(np.asarray(target_rates, dtype=float))
    best: tuple[float, PlanSignature] | None = None
    for c in np.flatnonzero(spec.combo_ok):
        cap = spec.cap[c]
        for by_tier in (False, True):
            sig = _greedy(codec, int(c), cap, demand, by_tier)
            if sig is None:
                continue
            short = float(np.maximum(demand - codec.capacity(sig), 0.0).sum())
            key = codec.price(sig) + 1e6 * short
            if best is None or key < best[0]:
                best = (key, sig)
    if best is None:
        sig, _ = codec.repair(-1, np.full(len(spec.workers), -1))
        return sig
    return best[1]


def _greedy(
    codec: ActionCodec, c: int, cap: np.ndarray, demand: np.ndarray, by_tier: bool
) -> PlanSignature | None:
    spec = codec.spec
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
    return PlanSignature(c, tuple(int(x) for x in assign))
