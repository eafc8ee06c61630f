"""Action encoding shared by :class:`~jbrl.envs.serving.ServingEnv` and the deployed PPO policy
(:mod:`jbrl.agents.ppo`), so both decode exactly the same plans.

* :class:`~jbrl.planning.tables.ServingSpec` (the planning layer's tables) - what a scenario fixes:
  operators, workers, the variant combinations that meet the accuracy target, capacities, which
  worker may run which operator, interchangeable workers.
* :class:`ActionCodec` - MultiDiscrete action <-> :class:`~jbrl.planning.plan.Plan`, with static
  masks and a documented repair that makes every decoded action a structurally valid plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jbrl.errors import InfeasibleError
from jbrl.planning.greedy import greedy_plan
from jbrl.planning.plan import Plan
from jbrl.planning.tables import ServingSpec


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
    has_level = False
    """Whether the action has a capacity level (:meth:`level_fraction`; the observation then
    carries the running plan's level)."""

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
        combo, assign = self.spec.index_of(plan)
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
            for wi in np.flatnonzero(assign == o):
                if spec.tier[wi] < lo:
                    assign[wi] = -1  # repair 2
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
        return self.spec.plan(sig.combo, sig.assignment, design_rates, "ppo-codec")

    def canonical_signature(self, plan: Plan) -> PlanSignature:
        """The repaired signature of any plan (e.g. a planner's) in this codec's terms."""
        sig = self.signature(plan)
        return self.repair(sig.combo, np.array(sig.assignment))[0]

    def canonical(self, plan: Plan, design_rates: np.ndarray) -> Plan:
        """``plan`` re-expressed as the codec would decode it (capacity-proportional rates)."""
        return self.plan_of(self.canonical_signature(plan), design_rates)

    def capacity(self, sig: PlanSignature) -> np.ndarray:
        """Capacity (req/s) per operator of a signature."""
        return self.spec.capacity(sig.combo, sig.assignment)

    def price(self, sig: PlanSignature) -> float:
        """Compute $/hour of a signature."""
        return self.spec.compute_price(sig.assignment)

    def level_fraction(self, sig: PlanSignature) -> float:
        """The running plan's capacity level in [0, 1], for codecs with levels
        (:attr:`has_level`); the per-worker action has none."""
        raise NotImplementedError("this action design has no capacity level")

    def greedy_signature(self, target_rates: np.ndarray) -> PlanSignature:
        """The greedy planner's plan for ``target_rates`` (:mod:`jbrl.planning.greedy`) as a
        repaired signature (never snapped to a ladder rung); when nothing can be placed
        greedily, the repair of an all-idle assignment. The env's starting plan when no
        planner is asked for."""
        plan = greedy_plan(self.spec, np.asarray(target_rates, dtype=float))
        if plan is None:
            return self.repair(-1, np.full(len(self.spec.workers), -1))[0]
        return ActionCodec.canonical_signature(self, plan)
