"""The MILP's columns and rows, built over a :class:`~jbrl.planning.milp.layout.Layout`.

:func:`build_model` adds, in this order (HiGHS's answer among equal-cost optima depends on the
order and names of columns and rows, so the order is part of the behaviour):

1. the choice of a variant combination (``z``, ``pick_combo``) and of each operator's variant
   (``y``, ``variant``); the rate scale ``lambda`` (``scale``) when maximising the rate;
   with a latency target, each operator's budget level (``w``, ``level``) and the arrival-time
   columns ``T`` with ``path`` rows (:mod:`jbrl.planning.milp.slo`);
2. per group, operator, variant and batch size: the worker count ``x`` and served rate ``r``
   with ``cap`` (with a latency target: per-level rates ``q`` with ``split``, ``cap_l`` and
   ``at_level``), ``min_rate``, ``use_variant``; per (group, operator, variant) the
   reconfiguration penalty (``d``, ``reconfig``); per group ``one_op``;
3. per operator: ``demand`` and ``variant_rate``;
4. per operator-to-operator edge: flows ``f`` with ``outflow`` and ``inflow``.

Columns of batch sizes above 1 carry a ``b<size>`` suffix; capacity-only models (batch 1, no
levels) keep the names and order they always had.

The module docstring of :mod:`jbrl.planning.milp.planner` states the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from jbrl.planning.groups import GroupLinks, WorkerGroup
from jbrl.planning.milp.combos import Combo
from jbrl.planning.milp.highs import INF, LinearModel, safe_name
from jbrl.planning.milp.layout import Key, Layout, ModelOptions, current_counts
from jbrl.planning.milp.slo import StageLayout
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Edge, Scenario

MIN_RATE = 1e-4  # req/s a used worker serves at least (so every paid worker appears in the plan)

FlowKey = tuple[int, int, int, tuple[str, ...]]
"""(edge index, sender group, receiver group, sender variants of one message-size class)."""

ACCURACY_TIE_BREAK = 1e-5
"""$/h a plan may give up for the most accurate combination over the least: far below any
worker's price, so it breaks ties (and trades at most this much transfer cost); above HiGHS'
default 1e-6 relative gap on objectives under 10 $/h, where it is therefore honoured."""


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
    w: dict[str, list[int]] = field(default_factory=dict)
    """Per operator, its budget level columns (with a latency target)."""
    layout_stages: StageLayout | None = None

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
    routing: bool = True,
) -> BuiltModel:
    """The cost-minimising model of ``demand`` (or, with ``scale_mode``, the model maximising
    the scale of ``demand`` it serves); ``current`` prices reconfiguration. Without
    ``routing`` the flows between operators are left out (a proxy for the budget levels)."""
    builder = _Builder(scenario, demand, layout, options, scale_mode)
    builder.add_choice()
    if scale_mode:
        builder.lam = builder.lm.add_var("scale", 0, 1e9, cost=-1.0)
    builder.add_levels()
    builder.add_assignment(current_counts(scenario, layout.groups, current))
    builder.add_demand()
    if routing:
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
        builder.w,
        layout.stages,
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
        self.w: dict[str, list[int]] = {}
        self.q: dict[tuple[str, int], list[int]] = {}

    # ------------------------------------------------------------------ choice

    def add_choice(self) -> None:
        """One combination (``z``, binary) and each operator's variant (``y = sum z``).

        In the cost model, plans of equal cost go to the more accurate combination: ``z``
        earns up to :data:`ACCURACY_TIE_BREAK` $/h, in proportion to its accuracy between the
        least and most accurate combination (costs closer than that count as equal; the
        planner reports the cost without it)."""
        combos, lm = self.layout.combos, self.lm
        if len(combos) <= 1:
            return
        accs = [acc for _a, acc in combos]
        lo, hi = min(accs), max(accs)
        for i, (assign, acc) in enumerate(combos):
            label = "_".join(assign[o] for o in self.scenario.accuracy.operators) or str(i)
            bonus = 0.0
            if not self.scale_mode and hi > lo:
                bonus = -ACCURACY_TIE_BREAK * (acc - lo) / (hi - lo)
            self.z.append(lm.add_var(safe_name("z", i, label), 0, 1, bonus, integer=True))
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

    # ------------------------------------------------------------------ latency levels

    def add_levels(self) -> None:
        """With a latency target: one budget level per operator (``w``, ``level``) and the
        arrival times ``T_o >= T_u + budget_o`` on every edge, ``T_o <= bound`` (``path``)."""
        stages = self.layout.stages
        if stages is None:
            return
        lm = self.lm
        budget: dict[str, list[tuple[int, float]]] = {}
        for o in self.scenario.topo_order:
            self.w[o] = [
                lm.add_var(safe_name("w", o, k), 0, 1, integer=True)
                for k in range(len(stages.levels[o]))
            ]
            lm.add_row(safe_name("level", o), [(j, 1.0) for j in self.w[o]], 1, 1)
            budget[o] = [(j, -b) for j, b in zip(self.w[o], stages.levels[o], strict=True)]
        t = {
            o: lm.add_var(safe_name("T", o), 0, stages.target.bound_s)
            for o in self.scenario.topo_order
        }
        for o in self.scenario.topo_order:
            inputs = {e.source for e in self.scenario.in_edges[o]}
            for u in sorted(inputs, key=lambda n: (n not in t, n)):
                before = [(t[u], -1.0)] if u in t else []
                lm.add_row(safe_name("path", u, o), [(t[o], 1.0), *before, *budget[o]], lb=0)
                if u not in t:  # every source input has the same row: one is enough
                    break

    # ------------------------------------------------------------------ assignment and rates

    def add_assignment(self, held: Mapping[tuple[int, str, str], int]) -> None:
        """Per group: ``x`` and ``r`` of every (operator, variant, batch) it may run, then
        ``one_op``."""
        scenario = self.scenario
        for g in self.layout.groups:
            for o in scenario.topo_order:
                src_cost = sum(
                    e.message_kb_for("default") * self.layout.links.source_cost[e.source][g.index]
                    for e in scenario.in_edges[o]
                    if e.source in scenario.source_map
                )
                for v in self.layout.placeable.get((g.index, o), []):
                    keep = held.get((g.index, o, v), 0) if self.options.keep_current else 0
                    xs = [
                        self._add_workers(g, o, v, b, src_cost, keep)
                        for b in self.layout.batches[(g.index, o, v)]
                    ]
                    self._add_reconfig(g, o, v, [x for x in xs if x is not None], held)
                    self._add_keep(g, o, v, [x for x in xs if x is not None], keep)
            terms = [(col, 1.0) for key, col in self.x.items() if key[0] == g.index]
            if terms:
                self.lm.add_row(safe_name("one_op", g.rep), terms, ub=g.size)

    def _add_workers(
        self, g: WorkerGroup, o: str, v: str, b: int, src_cost: float, keep: int = 0
    ) -> int | None:
        """``x`` workers of ``g`` run (o, v) in batches of ``b`` and serve ``r`` req/s; returns
        the ``x`` column (None when no worker would ever be used). ``keep``: workers of ``g``
        that must keep (o, v) (``keep_current``), so the column allows at least that many."""
        key = (g.index, o, v, b)
        lm, cap = self.lm, self.layout.caps[key]
        # An optimal plan never uses more workers of g for (o, v) than it takes to serve all of
        # o's demand at the lowest rate a worker may serve (the tightest stage level's SLO-safe
        # rate where the model has levels: the path budgets may force that level): a tighter
        # bound than |g| (valid for the optimum).
        most = g.size
        if not self.scale_mode:
            least = cap
            if self.layout.stages is not None:
                least = min((c for c in self.layout.stages.level_caps[key] if c > 0), default=cap)
            most = min(g.size, max(keep, math.ceil(self.demand[o] / least - 1e-7)))
        if most == 0:
            return None
        price, rate_cost = (0.0, 0.0) if self.scale_mode else (g.price, src_cost)
        tag = (g.rep, o, v) if b == 1 else (g.rep, o, v, f"b{b}")
        xi = lm.add_var(safe_name("x", *tag), 0, most, price, True)
        ri = lm.add_var(safe_name("r", *tag), 0, cap * most, rate_cost)
        self.x[key], self.r[key] = xi, ri
        if self.layout.stages is None:
            lm.add_row(safe_name("cap", *tag), [(ri, 1.0), (xi, -cap)], ub=0)
        else:
            self._add_level_caps(key, tag, xi, ri, most)
        lm.add_row(safe_name("min_rate", *tag), [(ri, 1.0), (xi, -min(MIN_RATE, 0.5 * cap))], lb=0)
        if (o, v) in self.y:
            lm.add_row(
                safe_name("use_variant", *tag), [(xi, 1.0), (self.y[(o, v)], -float(most))], ub=0
            )
        return xi

    def _add_level_caps(
        self, key: Key, tag: tuple[object, ...], xi: int, ri: int, most: int
    ) -> None:
        """``r`` is the sum of per-level rates ``q_l`` (``split``); ``q_l`` fits the level's
        SLO-safe rate of the ``x`` workers (``cap_l``) and is 0 unless the operator runs at
        level l (``at_level``)."""
        assert self.layout.stages is not None
        lm = self.lm
        split = [(ri, 1.0)]
        split_x = [(xi, 1.0)]
        for k, cap in enumerate(self.layout.stages.level_caps[key]):
            if cap <= 0:
                continue
            xk = lm.add_var(safe_name("xl", *tag, k), 0, most, integer=True)
            qi = lm.add_var(safe_name("q", *tag, k), 0, cap * most)
            split.append((qi, -1.0))
            split_x.append((xk, -1.0))
            lm.add_row(safe_name("cap_l", *tag, k), [(qi, 1.0), (xk, -cap)], ub=0)
            wk = self.w[key[1]][k]
            lm.add_row(safe_name("at_level", *tag, k), [(xk, 1.0), (wk, -most)], ub=0)
            self.q.setdefault((key[1], k), []).append(qi)
        lm.add_row(safe_name("split", *tag), split, 0, 0)
        lm.add_row(safe_name("split_x", *tag), split_x, 0, 0)

    def _add_reconfig(
        self,
        g: WorkerGroup,
        o: str,
        v: str,
        xs: list[int],
        held: Mapping[tuple[int, str, str], int],
    ) -> None:
        """$ ``reconfig_penalty`` per worker of ``g`` that runs (o, v) without holding it in the
        current plan, whatever the batch size (a batch-size change loads no model)."""
        penalty = self.options.reconfig_penalty
        if penalty <= 0 or self.scale_mode or not xs:
            return
        have = held.get((g.index, o, v), 0)
        if g.size == 1:
            if have == 0:
                for xi in xs:
                    self.lm.add_cost(xi, penalty)
            return
        most = sum(int(self.lm.col_upper[xi]) for xi in xs)
        di = self.lm.add_var(safe_name("d", g.rep, o, v), 0, min(most, g.size), penalty)
        self.lm.add_row(
            safe_name("reconfig", g.rep, o, v), [(di, 1.0)] + [(xi, -1.0) for xi in xs], lb=-have
        )

    def _add_keep(self, g: WorkerGroup, o: str, v: str, xs: list[int], keep: int) -> None:
        """``keep_current``: at least ``keep`` workers of ``g`` run (o, v) (``keep``); with no
        column to carry them the row has no terms and makes the model infeasible, as it is."""
        if keep <= 0 or self.scale_mode:
            return
        self.lm.add_row(safe_name("keep", g.rep, o, v), [(xi, 1.0) for xi in xs], lb=keep)

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
            # all of o's demand is served at its chosen level (tightens the LP relaxation)
            for k, wk in enumerate(self.w.get(o, [])):
                if self.lam is None:
                    qs = [(c, 1.0) for c in self.q.get((o, k), [])]
                    lm.add_row(safe_name("level_demand", o, k), qs + [(wk, -demand[o])], 0, 0)
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
        cols: dict[tuple[int, str, str], list[int]] = {}
        for (gi, op, var, _b), col in r.items():
            if op in (u, v):
                cols.setdefault((gi, op, var), []).append(col)
        senders = {
            (g.index, tuple(vs)): [c for var in vs for c in cols.get((g.index, u, var), [])]
            for g in groups
            for vs in classes.values()
        }
        receivers = {
            h.index: [c for var in variants[v] for c in cols.get((h.index, v, var), [])]
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
