"""Index tables of one scenario at one accuracy target, built once and read by the planners that
work on arrays (the greedy planner, :mod:`jbrl.planning.greedy`) and by the RL environment's
action codec (:mod:`jbrl.envs.codec`), so both see the same combinations, capacities and
placement rules.

:class:`ServingSpec` fixes: operators (topological order), workers and sources (scenario order),
the variant combinations that meet the accuracy target, each worker's capacity for each
operator under each combination, which worker may run which operator (a profile, and no
backward traffic), and the groups of interchangeable workers (:func:`jbrl.planning.groups
.worker_groups`, the one rule for them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jbrl.errors import InfeasibleError
from jbrl.planning.groups import worker_groups
from jbrl.planning.plan import Plan, WorkerShare
from jbrl.scenario.model import Scenario


class ServingSpec:
    """Index tables of one scenario at one accuracy target (built once, read everywhere).

    * ``combos`` / ``combo_accuracy``: the variant combinations meeting the target;
    * ``cap[c, w, o]``: req/s worker ``w`` sustains for operator ``o`` under combination ``c``
      (0: no profile);
    * ``min_tier[o]``: the lowest tier operator ``o`` may run on (not below its inputs when
      backward traffic is forbidden); ``allowed[w, o]``: some combination has a profile for
      ``o`` on ``w`` and ``w``'s tier is allowed; ``combo_ok[c]``: every operator of ``c`` has
      an allowed, profiled worker;
    * ``groups``: interchangeable workers (indices), one list per group, in scenario order.
    """

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
        self._combinations()
        self._placement_rules()
        self.total_price = float(self.price.sum())
        self.coef = scenario.demand_per_unit()
        self.groups: list[list[int]] = [
            [self.worker_index[m] for m in g.members] for g in worker_groups(scenario)
        ]

    def _combinations(self) -> None:
        """``combos``, ``combo_accuracy``, ``combo_index`` and the capacity table ``cap``."""
        scenario = self.scenario
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
        self.cap = np.zeros((nc, nw, no))
        for c, a in enumerate(self.combos):
            for w, wn in enumerate(self.workers):
                for o, op in enumerate(self.ops):
                    self.cap[c, w, o] = scenario.capacity(op, a[op], wn)

    def _placement_rules(self) -> None:
        """``min_tier``, ``forbid_backward``, ``allowed``, ``combo_ok`` and ``op_inputs``."""
        scenario = self.scenario
        nc, no = len(self.combos), len(self.ops)
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
        self.allowed = (self.cap.max(axis=0) > 0) & (self.tier[:, None] >= self.min_tier[None, :])
        self.combo_ok = np.array(
            [bool(np.all(((self.cap[c] > 0) & self.allowed).any(axis=0))) for c in range(nc)]
        )
        if not self.combo_ok.any():
            raise InfeasibleError(
                f"no variant combination of {scenario.name!r} can be placed on its workers", {}
            )
        # edges between operators, for the backward-traffic rule
        self.op_inputs: list[list[int]] = [
            [self.op_index[e.source] for e in scenario.in_edges[op] if e.source in self.op_index]
            for op in self.ops
        ]

    def demand(self, rates: np.ndarray) -> np.ndarray:
        """Required rate of every operator (topological order) at source ``rates``."""
        d = self.scenario.demand(dict(zip(self.sources, rates.tolist(), strict=True)))
        return np.array([d[o] for o in self.ops], dtype=float)

    def rates_array(self, rates: Mapping[str, float] | np.ndarray | Sequence[float]) -> np.ndarray:
        """Source rates as an array in ``sources`` order (missing sources: 0)."""
        if isinstance(rates, Mapping):
            return np.array([float(rates.get(s, 0.0)) for s in self.sources], dtype=float)
        return np.asarray(rates, dtype=float).reshape(len(self.sources))

    def rates_dict(self, rates: np.ndarray) -> dict[str, float]:
        """Source rates as a mapping (the inverse of :meth:`rates_array`)."""
        return dict(zip(self.sources, np.asarray(rates, dtype=float).tolist(), strict=True))

    def capacity(self, combo: int, assignment: Sequence[int]) -> np.ndarray:
        """Capacity (req/s) per operator of workers running ``assignment`` (operator index per
        worker, -1 idle) under combination ``combo``."""
        cap = self.cap[max(combo, 0)]
        out = np.zeros(len(self.ops))
        for w, o in enumerate(assignment):
            if o >= 0:
                out[o] += cap[w, o]
        return out

    def compute_price(self, assignment: Sequence[int]) -> float:
        """Compute $/hour of the workers that run something in ``assignment``."""
        return float(sum(self.price[w] for w, o in enumerate(assignment) if o >= 0))

    def index_of(self, plan: Plan) -> tuple[int, list[int]]:
        """(combination index, operator index per worker) of ``plan``: -1 for a combination
        not in the table and for workers that serve nothing (no share, or a zero rate)."""
        key = tuple(
            plan.model_assignment.get(o, self.scenario.operator_map[o].variants[0])
            for o in self.ops
        )
        combo = self.combo_index.get(key, -1)
        assign = [-1] * len(self.workers)
        for op, shares in plan.worker_assignment.items():
            oi = self.op_index.get(op)
            if oi is None:
                continue
            for s in shares:
                wi = self.worker_index.get(s.worker)
                if wi is not None and assign[wi] < 0 and (s.rate is None or s.rate > 0):
                    assign[wi] = oi
        return combo, assign

    def plan(
        self, combo: int, assignment: Sequence[int], design_rates: np.ndarray, solver: str
    ) -> Plan:
        """The plan of (combination, assignment), each operator's demand at ``design_rates``
        split over its workers in proportion to capacity (equal utilisation)."""
        variants = self.combos[combo]
        cap = self.cap[combo]
        demand = self.demand(design_rates)
        assign = np.array(assignment)
        wa: dict[str, list[WorkerShare]] = {}
        for o, op in enumerate(self.ops):
            ws = np.flatnonzero(assign == o)
            total = float(cap[ws, o].sum())
            rho = min(1.0, max(1e-3, demand[o] / total)) if total > 0 else 0.0
            wa[op] = [WorkerShare(self.workers[w], float(cap[w, o] * rho)) for w in ws]
        rates = dict(zip(self.sources, design_rates.tolist(), strict=True))
        return Plan(dict(variants), wa, None, {"rates": rates, "solver": solver})
