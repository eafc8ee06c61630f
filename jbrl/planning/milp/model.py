"""The MILP's columns and rows, built over a :class:`~jbrl.planning.milp.layout.Layout`.

:func:`build_model` adds, in this order (HiGHS's answer among equal-cost optima depends on the
order and names of columns and rows, so the order is part of the behaviour):

1. the choice of a variant combination (``z``, ``pick_combo``) and of each operator's variant
   (``y``, ``variant``); the rate scale ``lambda`` (``scale``) when maximising the rate;
2. per group, operator and variant: the worker count ``x`` and served rate ``r`` with ``cap``,
   ``min_rate``, ``use_variant`` and the reconfiguration penalty (``d``, ``reconfig``); per
   group ``one_op``;
3. per operator: ``demand`` and ``variant_rate``;
4. per operator-to-operator edge: flows ``f`` with ``outflow`` and ``inflow``.

The module docstring of :mod:`jbrl.planning.milp.planner` states the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from jbrl.planning.groups import GroupLinks, WorkerGroup
from jbrl.planning.milp.combos import Combo
from jbrl.planning.milp.highs import INF, LinearModel, safe_name
from jbrl.planning.milp.layout import Key, Layout, ModelOptions, current_counts
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Edge, Scenario

MIN_RATE = 1e-4  # req/s a used worker serves at least (so every paid worker appears in the plan)

FlowKey = tuple[int, int, int, tuple[str, ...]]
"""(edge index, sender group, receiver group, sender variants of one message-size class)."""


@dataclass
class BuiltModel:
    """The model and the column index of each variable the solution is read from."""

    lm: LinearModel
    combos: list[Combo]
    groups: list[WorkerGroup]
    links: GroupLinks
    z: list[int]
    x: dict[Key, int]
    r: dict[Key, int]
    f: dict[FlowKey, int]
    lam: int | None
    aggregated: bool
    notes: list[str]

    def size(self) -> dict[str, int]:
        """Columns, rows, integer columns and combinations (reported in ``solver_info``)."""
        return {
            "columns": self.lm.num_cols,
            "rows": self.lm.num_rows,
            "integers": self.lm.num_integer,
            "combinations": len(self.combos),
        }


def build_model(
    scenario: Scenario,
    demand: Mapping[str, float],
    layout: Layout,
    current: Plan | None,
    options: ModelOptions,
    scale_mode: bool,
) -> BuiltModel:
    """The cost-minimising model of ``demand`` (or, with ``scale_mode``, the model maximising
    the scale of ``demand`` it serves); ``current`` prices reconfiguration."""
    builder = _Builder(scenario, demand, layout, options, scale_mode)
    builder.add_choice()
    if scale_mode:
        builder.lam = builder.lm.add_var("scale", 0, 1e9, cost=-1.0)
    builder.add_assignment(current_counts(scenario, layout.groups, current))
    builder.add_demand()
    builder.add_flows()
    return BuiltModel(
        builder.lm,
        layout.combos,
        layout.groups,
        layout.links,
        builder.z,
        builder.x,
        builder.r,
        builder.f,
        builder.lam,
        layout.aggregated,
        layout.notes,
    )


class _Builder:
    """Adds the model's sections one after another to one :class:`LinearModel`."""

    def __init__(
        self,
        scenario: Scenario,
        demand: Mapping[str, float],
        layout: Layout,
        options: ModelOptions,
        scale_mode: bool,
    ) -> None:
        self.scenario = scenario
        self.demand = demand
        self.layout = layout
        self.options = options
        self.scale_mode = scale_mode
        self.lm = LinearModel()
        self.z: list[int] = []
        self.y: dict[tuple[str, str], int] = {}
        self.lam: int | None = None
        self.x: dict[Key, int] = {}
        self.r: dict[Key, int] = {}
        self.f: dict[FlowKey, int] = {}

    # ------------------------------------------------------------------ choice

    def add_choice(self) -> None:
        """One combination (``z``, binary) and each operator's variant (``y = sum z``)."""
        combos, lm = self.layout.combos, self.lm
        if len(combos) <= 1:
            return
        for i, (assign, _acc) in enumerate(combos):
            label = "_".join(assign[o] for o in self.scenario.accuracy.operators) or str(i)
            self.z.append(lm.add_var(safe_name("z", i, label), 0, 1, integer=True))
        lm.add_row("pick_combo", ((j, 1.0) for j in self.z), 1, 1)
        for o in self.scenario.topo_order:
            if len(self.layout.variants[o]) <= 1:
                continue
            for v in self.layout.variants[o]:
                self.y[(o, v)] = lm.add_var(safe_name("y", o, v), 0, 1)
                terms = [(self.y[(o, v)], 1.0)] + [
                    (self.z[i], -1.0) for i, (a, _) in enumerate(combos) if a[o] == v
                ]
                lm.add_row(safe_name("variant", o, v), terms, 0, 0)

    # ------------------------------------------------------------------ assignment and rates

    def add_assignment(self, held: Mapping[Key, int]) -> None:
        """Per group: ``x`` and ``r`` of every (operator, variant) it may run, then ``one_op``."""
        scenario = self.scenario
        for g in self.layout.groups:
            for o in scenario.topo_order:
                src_cost = sum(
                    e.message_kb_for("default") * self.layout.links.source_cost[e.source][g.index]
                    for e in scenario.in_edges[o]
                    if e.source in scenario.source_map
                )
                for v in self.layout.placeable.get((g.index, o), []):
                    self._add_workers(g, o, v, src_cost, held.get((g.index, o, v), 0))
            terms = [(col, 1.0) for key, col in self.x.items() if key[0] == g.index]
            if terms:
                self.lm.add_row(safe_name("one_op", g.rep), terms, ub=g.size)

    def _add_workers(self, g: WorkerGroup, o: str, v: str, src_cost: float, held: int) -> None:
        """``x`` workers of ``g`` run (o, v) and serve ``r`` req/s; ``held`` already hold it."""
        lm, key, cap = self.lm, (g.index, o, v), self.layout.caps[(g.index, o, v)]
        # An optimal plan never uses more workers of g for (o, v) than it takes to serve all of
        # o's demand: a tighter bound than |g| (valid for the optimum).
        most = g.size
        if not self.scale_mode:
            most = min(g.size, max(0, math.ceil(self.demand[o] / cap - 1e-7)))
        if most == 0:
            return
        price, rate_cost = (0.0, 0.0) if self.scale_mode else (g.price, src_cost)
        xi = lm.add_var(safe_name("x", g.rep, o, v), 0, most, price, True)
        ri = lm.add_var(safe_name("r", g.rep, o, v), 0, cap * most, rate_cost)
        self.x[key], self.r[key] = xi, ri
        lm.add_row(safe_name("cap", g.rep, o, v), [(ri, 1.0), (xi, -cap)], ub=0)
        lm.add_row(
            safe_name("min_rate", g.rep, o, v), [(ri, 1.0), (xi, -min(MIN_RATE, 0.5 * cap))], lb=0
        )
        if (o, v) in self.y:
            lm.add_row(
                safe_name("use_variant", g.rep, o, v),
                [(xi, 1.0), (self.y[(o, v)], -float(most))],
                ub=0,
            )
        penalty = self.options.reconfig_penalty
        if penalty > 0 and not self.scale_mode:
            if g.size == 1:
                if held == 0:
                    lm.add_cost(xi, penalty)
            else:
                di = lm.add_var(safe_name("d", g.rep, o, v), 0, most, penalty)
                lm.add_row(safe_name("reconfig", g.rep, o, v), [(di, 1.0), (xi, -1.0)], lb=-held)

    # ------------------------------------------------------------------ demand

    def add_demand(self) -> None:
        """Served rates meet each operator's demand (times ``lambda`` when maximising)."""
        lm, r, demand = self.lm, self.r, self.demand
        for o in self.scenario.topo_order:
            terms = [(r[k], 1.0) for k in r if k[1] == o]
            if self.lam is None:
                lm.add_row(safe_name("demand", o), terms, demand[o], demand[o])
            else:
                lm.add_row(safe_name("demand", o), terms + [(self.lam, -demand[o])], 0, 0)
            # all of o's demand is served by its chosen variant (tightens the LP relaxation)
            for v in self.layout.variants[o]:
                if (o, v) in self.y and self.lam is None:
                    lm.add_row(
                        safe_name("variant_rate", o, v),
                        [(r[k], 1.0) for k in r if k[1] == o and k[2] == v]
                        + [(self.y[(o, v)], -demand[o])],
                        ub=0,
                    )

    # ------------------------------------------------------------------ routing

    def add_flows(self) -> None:
        """Flows on every operator -> operator edge (source edges are priced on ``r``)."""
        for ei, e in enumerate(self.scenario.edges):
            if e.source not in self.scenario.source_map:
                self._add_edge_flows(ei, e)

    def _add_edge_flows(self, ei: int, e: Edge) -> None:
        """``f`` from each sender group (per message-size class) to each receiver group, with
        ``outflow`` (at most ratio x what the senders serve) and ``inflow`` (what the receivers
        serve)."""
        u, v = e.source, e.target
        groups, variants, r = self.layout.groups, self.layout.variants, self.r
        classes: dict[float, list[str]] = {}
        for var in variants[u]:
            classes.setdefault(e.message_kb_for(var), []).append(var)
        senders = {
            (g.index, tuple(vs)): [r[(g.index, u, var)] for var in vs if (g.index, u, var) in r]
            for g in groups
            for vs in classes.values()
        }
        receivers = {
            h.index: [r[(h.index, v, var)] for var in variants[v] if (h.index, v, var) in r]
            for h in groups
        }
        inflow: dict[int, list[tuple[int, float]]] = {}
        for (gi, cls), s_cols in senders.items():
            if not s_cols:
                continue
            out_terms = self._add_sender_flows(ei, e, gi, cls, receivers, inflow)
            if out_terms:
                self.lm.add_row(
                    safe_name("outflow", u, v, groups[gi].rep, cls[0]),
                    out_terms + [(c, -e.ratio) for c in s_cols],
                    ub=0,
                )
        for h in groups:
            if receivers[h.index]:
                self.lm.add_row(
                    safe_name("inflow", u, v, h.rep),
                    inflow.get(h.index, []) + [(c, -1.0) for c in receivers[h.index]],
                    0,
                    0,
                )

    def _add_sender_flows(
        self,
        ei: int,
        e: Edge,
        gi: int,
        cls: tuple[str, ...],
        receivers: Mapping[int, list[int]],
        inflow: dict[int, list[tuple[int, float]]],
    ) -> list[tuple[int, float]]:
        """Flow columns from group ``gi`` (variants ``cls``) to every group it may send to;
        returns the ``outflow`` terms and adds each column to the receiver's ``inflow``."""
        links, groups = self.layout.links, self.layout.groups
        kb = e.message_kb_for(cls[0])
        out_terms: list[tuple[int, float]] = []
        for h in groups:
            if not receivers[h.index] or not links.allowed[gi, h.index]:
                continue
            ub = INF
            if self.options.bandwidth and not self.layout.aggregated and kb > 0:
                ub = links.bw_kb_s[gi, h.index] / kb
            cost = 0.0 if self.scale_mode else kb * links.cost[gi, h.index]
            name = safe_name("f", e.source, e.target, groups[gi].rep, h.rep, cls[0])
            fi = self.lm.add_var(name, 0, ub, cost)
            self.f[(ei, gi, h.index, cls)] = fi
            out_terms.append((fi, 1.0))
            inflow.setdefault(h.index, []).append((fi, 1.0))
        return out_terms
