"""Exact planner: one mixed-integer linear program solved by HiGHS.

The model (minimise $/hour exactly as :mod:`jbrl.planning.cost` defines it):

==========================  =================================================================
variables                   meaning
==========================  =================================================================
``z[c]`` binary             variant combination c (end-to-end accuracy >= target) is chosen
``y[o,v]`` in [0, 1]        operator o runs variant v (``= sum of z[c]`` over c with o=v)
``x[g,o,v]`` integer        how many workers of group g run (o, v); binary for single workers
``r[g,o,v]`` >= 0           req/s those workers serve together
``f[e,g,h,k]`` >= 0         req/s of edge e=(u,v) sent from u's workers in g (running a variant
                            of message-size class k) to v's workers in h
``d[g,o,v]`` >= 0           workers of g newly loading (o, v) (reconfiguration penalty only)
==========================  =================================================================

constraints (named in the model): ``pick_combo`` (one combination), ``variant`` (y = sum z),
``one_op`` (a worker hosts at most one operator: sum x <= |g|), ``use_variant`` (x <= |g| y),
``cap`` (r <= max_util * capacity * x), ``min_rate`` (r >= 1e-4 x: a paid worker serves),
``demand`` (sum r = required rate of o), ``inflow`` (what h's workers of v receive on e = what
they serve), ``outflow`` (what g's workers of u send on e <= ratio * what they serve),
``reconfig`` (d >= x - workers of g already running (o, v)).

objective: ``sum price_g x + sum kb * link$ * f + sum kb_source * link$ * r (source edges)
+ penalty * sum d``. Explicit flows make the communication cost linear; proportional mixing (the
cost model's default without routing) is one feasible routing, so the optimum is never worse.

Aggregation (:mod:`jbrl.planning.groups`): interchangeable workers form one group with an integer
count, flows run between groups, and the solution is disaggregated (equal rates per worker;
flows split by a north-west-corner transport fill). Link costs are uniform within a group pair,
so the disaggregated plan costs exactly the MILP objective. Per-pair bandwidth limits are exact
without aggregation; with it, source links are exact (a per-worker rate bound) and worker-to-
worker links are checked up front: if any could bind, aggregation is switched off.

:func:`max_rate` solves the same model with demand ``lambda * rates`` and maximises lambda.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import highspy
import numpy as np

from jbrl.errors import InputError
from jbrl.planning.base import PlanResult, Status, finish, full_rates, target_accuracy
from jbrl.planning.cost import RATE_TOL, evaluate_plan
from jbrl.planning.groups import GroupLinks, WorkerGroup, group_links, worker_groups
from jbrl.planning.milp.highs import INF, LinearModel, run_highs, safe_name
from jbrl.planning.plan import Flow, Plan, WorkerShare
from jbrl.scenario.model import Scenario

MIN_RATE = 1e-4  # req/s a used worker serves at least (so every paid worker appears in the plan)
VALUE_TOL = 1e-9  # flows / rates below this are solver noise

Key = tuple[int, str, str]  # (group index, operator, variant)


@dataclass
class MaxRate:
    """Largest uniform scale of ``base_rates`` the infrastructure sustains at ``accuracy``."""

    scale: float
    rates: dict[str, float]
    base_rates: dict[str, float]
    accuracy: float
    status: Status
    solve_time_s: float
    model_assignment: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "accuracy": self.accuracy,
            "max_rate_scale": self.scale,
            "max_rates": self.rates,
            "base_rates": self.base_rates,
            "model_assignment": self.model_assignment,
            "solve_time_s": self.solve_time_s,
        }


@dataclass
class _Built:
    lm: LinearModel
    combos: list[tuple[dict[str, str], float]]
    groups: list[WorkerGroup]
    links: GroupLinks
    z: list[int]
    x: dict[Key, int]
    r: dict[Key, int]
    f: dict[tuple[int, int, int, tuple[str, ...]], int]
    lam: int | None
    aggregated: bool
    notes: list[str]


class MilpPlanner:
    """Exact MILP planner (HiGHS). See the module docstring for the model.

    Options:
        max_util: serve at most this fraction of each worker's capacity (latency headroom).
        time_limit: seconds for HiGHS; the best plan found so far is returned as ``feasible``.
        mip_rel_gap: relative optimality gap at which HiGHS stops.
        aggregate: group interchangeable workers (see :mod:`jbrl.planning.groups`).
        bandwidth: respect link bandwidth (MB/s per sender->receiver pair).
        warm_start: a plan to start from (its integer choices are handed to HiGHS).
        current_plan, reconfig_penalty: $ added per worker that must load a model it does not
            hold in ``current_plan`` (online re-planning; 0 disables).
        write_model: write the model to this ``.lp`` / ``.mps`` file before solving.
        workers: only these workers may be used (default: all).
        variants: fix these operators' variants.
        most_accurate: only the most accurate combination(s) of the table are allowed.
        threads: HiGHS threads (default: HiGHS's choice).
        prune_dominated: drop a variant combination when another allowed one is at least as
            fast on every worker with messages no larger, for every operator (exact; off while
            a reconfiguration penalty applies, since keeping a loaded variant may pay).
    """

    name = "milp"

    def __init__(
        self,
        max_util: float = 1.0,
        time_limit: float | None = 60.0,
        mip_rel_gap: float = 1e-6,
        aggregate: bool = True,
        bandwidth: bool = True,
        warm_start: Plan | None = None,
        current_plan: Plan | None = None,
        reconfig_penalty: float = 0.0,
        write_model: str | Path | None = None,
        workers: Sequence[str] | None = None,
        variants: Mapping[str, str] | None = None,
        most_accurate: bool = False,
        threads: int | None = None,
        prune_dominated: bool = True,
        name: str | None = None,
    ) -> None:
        if not (0 < max_util <= 1.0 + 1e-12):
            raise InputError("must be in (0, 1]", field="max_util", value=max_util)
        if time_limit is not None and not time_limit > 0:
            raise InputError("must be > 0 seconds", field="time_limit", value=time_limit)
        if not mip_rel_gap >= 0:
            raise InputError("must be >= 0", field="mip_rel_gap", value=mip_rel_gap)
        if reconfig_penalty < 0:
            raise InputError("must be >= 0", field="reconfig_penalty", value=reconfig_penalty)
        if write_model is not None and Path(write_model).suffix not in (".lp", ".mps"):
            raise InputError("must end in .lp or .mps", field="write_model", value=str(write_model))
        self.max_util = float(max_util)
        self.time_limit = time_limit
        self.mip_rel_gap = float(mip_rel_gap)
        self.aggregate = aggregate
        self.bandwidth = bandwidth
        self.warm_start = warm_start
        self.current_plan = current_plan
        self.reconfig_penalty = float(reconfig_penalty)
        self.write_model = write_model
        self.workers = list(workers) if workers is not None else None
        self.variants = dict(variants or {})
        self.most_accurate = most_accurate
        self.threads = threads
        self.prune_dominated = prune_dominated
        if name is not None:
            self.name = name

    # ------------------------------------------------------------------ public

    def plan(
        self,
        scenario: Scenario,
        rates: Mapping[str, float] | None = None,
        accuracy: float | None = None,
        *,
        current_plan: Plan | None = None,
        warm_start: Plan | None = None,
    ) -> PlanResult:
        """Cheapest plan at ``rates`` (default nominal) meeting ``accuracy`` (default SLO)."""
        t0 = time.perf_counter()
        rates_d = full_rates(scenario, rates)
        target = target_accuracy(scenario, accuracy)
        current = current_plan if current_plan is not None else self.current_plan
        start = warm_start if warm_start is not None else self.warm_start
        combos = self._combinations(scenario, target)
        if not combos:
            return self._infeasible(scenario, rates_d, target, t0)
        built = self._build(scenario, scenario.demand(rates_d), combos, current, scale_mode=False)
        h = built.lm.to_highs(self._options())
        if start is not None:
            self._set_warm_start(h, built, scenario, start, rates_d)
        if (
            self.write_model is not None
            and h.writeModel(str(self.write_model)) == highspy.HighsStatus.kError
        ):
            raise InputError("cannot write the model file", file=str(self.write_model))
        run_highs(h, self.threads)
        status, gap = _status(h, built.lm.num_integer > 0)
        if status is None:
            ms = h.getModelStatus()
            if ms not in (
                highspy.HighsModelStatus.kInfeasible,
                highspy.HighsModelStatus.kUnboundedOrInfeasible,
            ):  # stopped (time limit, ...) before finding any plan: not proven infeasible
                reason = {
                    "message": f"no plan found before HiGHS stopped ({h.modelStatusToString(ms)}, "
                    f"time limit {self.time_limit} s); infeasibility is not proven",
                    "proven": False,
                    "accuracy_target": target,
                    "best_reachable_accuracy": scenario.best_accuracy(),
                    "requested_rates": rates_d,
                    "time_limit_s": self.time_limit,
                }
                return PlanResult.infeasible(
                    self.name, reason, time.perf_counter() - t0, model=_model_size(built)
                )
            return self._infeasible(scenario, rates_d, target, t0)
        values = np.asarray(h.getSolution().col_value)
        plan, changed = self._extract(scenario, built, values, current)
        objective = float(h.getInfo().objective_function_value)
        extra: dict[str, Any] = {
            "objective": objective,
            "model": _model_size(built),
            "aggregated": built.aggregated,
            "groups": len(built.groups),
            "notes": built.notes,
            "highs_status": h.modelStatusToString(h.getModelStatus()),
        }
        if current is not None:
            extra["changed_workers"] = changed
            extra["reconfiguration_penalty"] = self.reconfig_penalty * changed
        result, _ = finish(
            scenario,
            plan,
            self.name,
            status,
            rates_d,
            target,
            time.perf_counter() - t0,
            gap,
            extra,
        )
        return result

    def max_rate(
        self,
        scenario: Scenario,
        accuracy: float | None = None,
        rates: Mapping[str, float] | None = None,
    ) -> MaxRate:
        """Largest ``lambda`` such that ``lambda * rates`` (default nominal) can be served."""
        t0 = time.perf_counter()
        base = full_rates(scenario, rates)
        if not any(v > 0 for v in base.values()):
            base = scenario.nominal_rates()
        target = target_accuracy(scenario, accuracy)
        combos = self._combinations(scenario, target)
        if not combos:
            return MaxRate(0.0, dict.fromkeys(base, 0.0), base, target, "infeasible", 0.0)
        demand = scenario.demand(base)
        built = self._build(scenario, demand, combos, None, scale_mode=True)
        h = built.lm.to_highs(self._options())
        run_highs(h, self.threads)
        status, _ = _status(h, built.lm.num_integer > 0)
        if status is None or built.lam is None:
            return MaxRate(
                0.0, dict.fromkeys(base, 0.0), base, target, "infeasible", time.perf_counter() - t0
            )
        values = np.asarray(h.getSolution().col_value)
        lam = max(0.0, float(values[built.lam]))
        combo = built.combos[int(np.argmax([values[j] for j in built.z]))] if built.z else combos[0]
        return MaxRate(
            lam,
            {s: lam * v for s, v in base.items()},
            base,
            target,
            status,
            time.perf_counter() - t0,
            dict(combo[0]),
        )

    # ------------------------------------------------------------------ model

    def _options(self) -> dict[str, object]:
        opts: dict[str, object] = {"mip_rel_gap": self.mip_rel_gap, "random_seed": 0}
        if self.time_limit is not None:
            opts["time_limit"] = float(self.time_limit)
        if self.threads is not None:
            opts["threads"] = int(self.threads)
        return opts

    def _combinations(
        self, scenario: Scenario, target: float
    ) -> list[tuple[dict[str, str], float]]:
        combos = list(scenario.variant_combinations())
        for op, var in self.variants.items():
            if op not in scenario.operator_map or var not in scenario.operator_map[op].variants:
                raise InputError("unknown operator or variant", field=f"variants.{op}", value=var)
        combos = [c for c in combos if all(c[0][o] == v for o, v in self.variants.items())]
        if self.most_accurate and combos:
            best = max(a for _, a in combos)
            combos = [c for c in combos if c[1] >= best - 1e-12]
        return [c for c in combos if c[1] >= target - 1e-9]

    def _groups(self, scenario: Scenario, aggregate: bool) -> list[WorkerGroup]:
        names = self.workers
        if names is not None:
            unknown = [w for w in names if w not in scenario.worker_map]
            if unknown:
                raise InputError("unknown worker", field="workers", value=unknown[0])
        return worker_groups(scenario, names, aggregate)

    def _build(
        self,
        scenario: Scenario,
        demand: Mapping[str, float],
        combos: list[tuple[dict[str, str], float]],
        current: Plan | None,
        scale_mode: bool,
    ) -> _Built:
        notes: list[str] = []
        aggregated = self.aggregate
        groups = self._groups(scenario, aggregated)
        links = group_links(scenario, groups)
        if self.prune_dominated and not (self.reconfig_penalty > 0 and current is not None):
            before = len(combos)
            combos = prune_dominated(scenario, combos, [g.rep for g in groups])
            if len(combos) < before:
                notes.append(f"{before - len(combos)} dominated variant combination(s) dropped")
        variants = _used_variants(scenario, combos)
        caps = self._capacities(scenario, groups, links, variants)
        if (
            aggregated
            and self.bandwidth
            and any(g.size > 1 for g in groups)
            and _bandwidth_may_bind(scenario, groups, links, caps, variants)
        ):
            notes.append("aggregation off: a worker-to-worker link's bandwidth may bind")
            aggregated = False
            groups = self._groups(scenario, False)
            links = group_links(scenario, groups)
            caps = self._capacities(scenario, groups, links, variants)
        placeable = _placeable(scenario, groups, links, caps)

        lm = LinearModel()
        ops = scenario.topo_order
        # --- combination and variant choice
        z: list[int] = []
        y: dict[tuple[str, str], int] = {}
        if len(combos) > 1:
            for i, (assign, _acc) in enumerate(combos):
                label = "_".join(assign[o] for o in scenario.accuracy.operators) or str(i)
                z.append(lm.add_var(safe_name("z", i, label), 0, 1, integer=True))
            lm.add_row("pick_combo", ((j, 1.0) for j in z), 1, 1)
            for o in ops:
                if len(variants[o]) > 1:
                    for v in variants[o]:
                        y[(o, v)] = lm.add_var(safe_name("y", o, v), 0, 1)
                        terms = [(y[(o, v)], 1.0)] + [
                            (z[i], -1.0) for i, (a, _) in enumerate(combos) if a[o] == v
                        ]
                        lm.add_row(safe_name("variant", o, v), terms, 0, 0)
        lam = lm.add_var("scale", 0, 1e9, cost=-1.0) if scale_mode else None

        # --- assignment and rates
        cur_counts = self._current_counts(scenario, groups, current)
        x: dict[Key, int] = {}
        r: dict[Key, int] = {}
        for g in groups:
            for o in ops:
                src_cost = sum(
                    e.message_kb_for("default") * links.source_cost[e.source][g.index]
                    for e in scenario.in_edges[o]
                    if e.source in scenario.source_map
                )
                for v in placeable.get((g.index, o), []):
                    key = (g.index, o, v)
                    cap = caps[key]
                    # An optimal plan never uses more workers of g for (o, v) than it takes to
                    # serve all of o's demand: a tighter bound than |g| (valid for the optimum).
                    most = g.size
                    if not scale_mode:
                        most = min(g.size, max(0, math.ceil(demand[o] / cap - 1e-7)))
                    if most == 0:
                        continue
                    xi = lm.add_var(
                        safe_name("x", g.rep, o, v),
                        0,
                        most,
                        0 if scale_mode else g.price,
                        True,
                    )
                    ri = lm.add_var(
                        safe_name("r", g.rep, o, v), 0, cap * most, 0 if scale_mode else src_cost
                    )
                    x[key], r[key] = xi, ri
                    lm.add_row(safe_name("cap", g.rep, o, v), [(ri, 1.0), (xi, -cap)], ub=0)
                    lm.add_row(
                        safe_name("min_rate", g.rep, o, v),
                        [(ri, 1.0), (xi, -min(MIN_RATE, 0.5 * cap))],
                        lb=0,
                    )
                    if (o, v) in y:
                        lm.add_row(
                            safe_name("use_variant", g.rep, o, v),
                            [(xi, 1.0), (y[(o, v)], -float(most))],
                            ub=0,
                        )
                    if self.reconfig_penalty > 0 and not scale_mode:
                        held = cur_counts.get(key, 0)
                        if g.size == 1:
                            if held == 0:
                                lm.add_cost(xi, self.reconfig_penalty)
                        else:
                            di = lm.add_var(
                                safe_name("d", g.rep, o, v), 0, most, self.reconfig_penalty
                            )
                            lm.add_row(
                                safe_name("reconfig", g.rep, o, v),
                                [(di, 1.0), (xi, -1.0)],
                                lb=-held,
                            )
            terms = [(col, 1.0) for key, col in x.items() if key[0] == g.index]
            if terms:
                lm.add_row(safe_name("one_op", g.rep), terms, ub=g.size)

        for o in ops:
            terms = [(r[k], 1.0) for k in r if k[1] == o]
            if lam is None:
                lm.add_row(safe_name("demand", o), terms, demand[o], demand[o])
            else:
                lm.add_row(safe_name("demand", o), terms + [(lam, -demand[o])], 0, 0)
            # all of o's demand is served by its chosen variant (tightens the LP relaxation)
            for v in variants[o]:
                if (o, v) in y and lam is None:
                    lm.add_row(
                        safe_name("variant_rate", o, v),
                        [(r[k], 1.0) for k in r if k[1] == o and k[2] == v]
                        + [(y[(o, v)], -demand[o])],
                        ub=0,
                    )

        # --- routing flows on operator -> operator edges
        f: dict[tuple[int, int, int, tuple[str, ...]], int] = {}
        for ei, e in enumerate(scenario.edges):
            u, v = e.source, e.target
            if u in scenario.source_map:
                continue
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
                kb = e.message_kb_for(cls[0])
                out_terms: list[tuple[int, float]] = []
                for h in groups:
                    if not receivers[h.index] or not links.allowed[gi, h.index]:
                        continue
                    ub = INF
                    if self.bandwidth and not aggregated and kb > 0:
                        ub = links.bw_kb_s[gi, h.index] / kb
                    cost = 0.0 if scale_mode else kb * links.cost[gi, h.index]
                    name = safe_name("f", u, v, groups[gi].rep, h.rep, cls[0])
                    fi = lm.add_var(name, 0, ub, cost)
                    f[(ei, gi, h.index, cls)] = fi
                    out_terms.append((fi, 1.0))
                    inflow.setdefault(h.index, []).append((fi, 1.0))
                if out_terms:
                    lm.add_row(
                        safe_name("outflow", u, v, groups[gi].rep, cls[0]),
                        out_terms + [(c, -e.ratio) for c in s_cols],
                        ub=0,
                    )
            for h in groups:
                if receivers[h.index]:
                    lm.add_row(
                        safe_name("inflow", u, v, h.rep),
                        inflow.get(h.index, []) + [(c, -1.0) for c in receivers[h.index]],
                        0,
                        0,
                    )
        return _Built(lm, combos, groups, links, z, x, r, f, lam, aggregated, notes)

    def _capacities(
        self,
        scenario: Scenario,
        groups: list[WorkerGroup],
        links: GroupLinks,
        variants: Mapping[str, list[str]],
    ) -> dict[Key, float]:
        """max_util * capacity per worker, also bounded by source-link bandwidth."""
        caps: dict[Key, float] = {}
        for g in groups:
            for o in scenario.topo_order:
                src_edges = [e for e in scenario.in_edges[o] if e.source in scenario.source_map]
                if any(not np.isfinite(links.source_cost[e.source][g.index]) for e in src_edges):
                    continue  # the source's data would have to flow backward
                for v in variants[o]:
                    cap = scenario.capacity(o, v, g.rep) * self.max_util
                    if self.bandwidth:
                        for e in src_edges:
                            kb = e.message_kb_for("default")
                            if kb > 0:
                                cap = min(cap, links.source_bw_kb_s[e.source][g.index] / kb)
                    if cap > 0:
                        caps[(g.index, o, v)] = cap
        return caps

    def _current_counts(
        self, scenario: Scenario, groups: list[WorkerGroup], current: Plan | None
    ) -> dict[Key, int]:
        if current is None:
            return {}
        gi = {w: g.index for g in groups for w in g.members}
        out: dict[Key, int] = {}
        for w, (o, v) in _held(scenario, current).items():
            if w in gi:
                key = (gi[w], o, v)
                out[key] = out.get(key, 0) + 1
        return out

    def _set_warm_start(
        self,
        h: highspy.Highs,
        built: _Built,
        scenario: Scenario,
        start: Plan,
        rates: Mapping[str, float],
    ) -> None:
        """Hand HiGHS the start plan's integer choices; HiGHS completes rates and flows."""
        variant = {
            o.name: start.model_assignment.get(o.name, o.variants[0]) for o in scenario.operators
        }
        idx = next((i for i, (a, _) in enumerate(built.combos) if a == variant), None)
        if idx is None:
            return
        report = evaluate_plan(scenario, start, rates)
        gi = {w: g.index for g in built.groups for w in g.members}
        counts: dict[Key, int] = {}
        for op, load in report.operators.items():
            for wl in load.workers:
                if wl.rate > RATE_TOL and wl.worker in gi:
                    key = (gi[wl.worker], op, load.variant)
                    counts[key] = counts.get(key, 0) + 1
        if any(k not in built.x for k in counts):
            return
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
        h.setSolution(len(cols), np.asarray(cols, dtype=np.int32), np.asarray(vals))

    # ------------------------------------------------------------------ solution

    def _extract(
        self, scenario: Scenario, built: _Built, values: np.ndarray, current: Plan | None
    ) -> tuple[Plan, int]:
        combo = (
            built.combos[int(np.argmax([values[j] for j in built.z]))]
            if built.z
            else built.combos[0]
        )
        assignment = dict(combo[0])
        held = _held(scenario, current) if current is not None else {}
        order = {w.name: i for i, w in enumerate(scenario.workers)}
        # which members of each group serve what, and at which rate
        per_group: dict[int, list[tuple[str, str, int, float]]] = {}
        for key, col in built.x.items():
            count = int(round(values[col]))
            rate = float(values[built.r[key]])
            if count <= 0 or rate <= VALUE_TOL:
                continue
            per_group.setdefault(key[0], []).append((key[1], key[2], count, rate))
        served: dict[str, list[tuple[str, float]]] = {}  # op -> [(worker, rate)]
        by_group_op: dict[tuple[int, str], list[tuple[str, float]]] = {}
        changed = 0
        for gi, items in per_group.items():
            free = list(built.groups[gi].members)
            chosen: dict[tuple[str, str], list[str]] = {}
            for o, v, count, _ in items:  # keep members that already hold (o, v)
                keep = [w for w in free if held.get(w) == (o, v)][:count]
                chosen[(o, v)] = keep
                free = [w for w in free if w not in keep]
            free.sort(key=lambda w: (w in held, order[w]))
            for o, v, count, rate in items:
                need = count - len(chosen[(o, v)])
                chosen[(o, v)] += free[:need]
                free = free[need:]
                changed += need
                for w in chosen[(o, v)]:
                    served.setdefault(o, []).append((w, rate / count))
                    by_group_op.setdefault((gi, o), []).append((w, rate / count))
        worker_assignment = {
            o: [WorkerShare(w, r) for w, r in sorted(served.get(o, []), key=lambda t: order[t[0]])]
            for o in scenario.topo_order
            if served.get(o)
        }
        routing: list[Flow] = []
        for e in scenario.edges:
            u, v = e.source, e.target
            if u in scenario.source_map:
                routing += [Flow((u, v), u, w, r) for w, r in served.get(v, [])]
        for ei, e in enumerate(scenario.edges):
            u, v = e.source, e.target
            if u in scenario.source_map:
                continue
            pair_flow: dict[tuple[int, int], float] = {}
            for (fe, gi, hi, _cls), col in built.f.items():
                if fe == ei and values[col] > VALUE_TOL:
                    pair_flow[(gi, hi)] = pair_flow.get((gi, hi), 0.0) + float(values[col])
            routing += _transport(e.source, e.target, e.ratio, pair_flow, by_group_op)
        return Plan(assignment, worker_assignment, routing, {}), changed

    def _infeasible(
        self, scenario: Scenario, rates: dict[str, float], target: float, t0: float
    ) -> PlanResult:
        probe = MilpPlanner(
            max_util=self.max_util,
            time_limit=min(self.time_limit or 30.0, 30.0),
            mip_rel_gap=1e-4,
            aggregate=self.aggregate,
            bandwidth=self.bandwidth,
            workers=self.workers,
            variants=self.variants,
            most_accurate=self.most_accurate,
            threads=self.threads,
        )
        reason = infeasibility_reason(scenario, rates, target, probe)
        return PlanResult.infeasible(self.name, reason, time.perf_counter() - t0)


# --------------------------------------------------------------------------- functions


def max_rate(
    scenario: Scenario,
    accuracy: float | None = None,
    rates: Mapping[str, float] | None = None,
    **options: Any,
) -> MaxRate:
    """Largest uniform scale of ``rates`` (default nominal) sustainable at ``accuracy``.

    ``options`` are :class:`MilpPlanner` options (``max_util``, ``workers``, ...).
    """
    options.setdefault("mip_rel_gap", 1e-4)
    return MilpPlanner(**options).max_rate(scenario, accuracy, rates)


def infeasibility_reason(
    scenario: Scenario,
    rates: Mapping[str, float],
    target: float,
    probe: MilpPlanner | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """Why a request cannot be met, with numbers: the best reachable accuracy and the largest
    uniform scale of the requested rates the infrastructure sustains at the target accuracy
    (or, when the target is out of reach, at the best reachable accuracy)."""
    probe = probe or MilpPlanner(mip_rel_gap=1e-4, time_limit=30.0)
    combos = list(scenario.variant_combinations())
    if probe.variants:
        combos = [c for c in combos if all(c[0][o] == v for o, v in probe.variants.items())]
    best = max((a for _, a in combos), default=-math.inf)
    at = best if probe.most_accurate or target > best + 1e-9 else target
    mr = probe.max_rate(scenario, at, rates) if math.isfinite(at) else None
    scale = mr.scale if mr is not None else 0.0
    if target > best + 1e-9:
        text = (
            f"accuracy {target:g} is above the best reachable {best:g} "
            f"({scenario.accuracy.metric}); at {best:g} the infrastructure sustains "
            f"{scale:.4g}x the requested rates"
        )
    elif scale < 1.0 - 1e-6:
        shown = ", ".join(f"{s}={v:.4g}" for s, v in (mr.rates if mr else {}).items())
        text = (
            f"the requested rates need more capacity than the workers have: at accuracy "
            f"{at:g} they sustain at most {scale:.4g}x the requested rates ({shown} req/s)"
        )
    else:
        text = message or "no plan meets every constraint"
    return {
        "message": text,
        "proven": True,
        "accuracy_target": target,
        "best_reachable_accuracy": best if math.isfinite(best) else None,
        "max_rate_accuracy": at if math.isfinite(at) else None,
        "max_rate_scale": scale,
        "max_rates": dict(mr.rates) if mr is not None else {},
        "requested_rates": dict(rates),
        "max_util": probe.max_util,
    }


# --------------------------------------------------------------------------- helpers


def _status(h: highspy.Highs, is_mip: bool) -> tuple[Status | None, float | None]:
    ms = h.getModelStatus()
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    gap = float(info.mip_gap) if is_mip else 0.0
    if not math.isfinite(gap):
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


def prune_dominated(
    scenario: Scenario,
    combos: list[tuple[dict[str, str], float]],
    workers: Sequence[str],
) -> list[tuple[dict[str, str], float]]:
    """Drop combinations another one dominates: for every operator its variant has at least
    the capacity on every worker in ``workers`` and messages no larger on every out-edge. Any
    plan with the dominated combination works, at no higher cost, with the dominating one, so
    the optimum is unchanged. Among equivalent combinations the most accurate is kept."""
    if len(combos) < 2:
        return combos
    ops = [o.name for o in scenario.operators]
    index = {o: {v: i for i, v in enumerate(scenario.operator_map[o].variants)} for o in ops}
    better: dict[str, np.ndarray] = {}  # better[o][a, b]: variant a at least as good as b
    for o in ops:
        names = scenario.operator_map[o].variants
        caps = np.array([[scenario.capacity(o, v, w) for w in workers] for v in names])
        kbs = np.array(
            [[e.message_kb_for(v) for e in scenario.out_edges[o]] for v in names]
        ).reshape(len(names), -1)
        better[o] = np.all(caps[:, None, :] >= caps[None, :, :], axis=2) & np.all(
            kbs[:, None, :] <= kbs[None, :, :], axis=2
        )
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


def _used_variants(
    scenario: Scenario, combos: list[tuple[dict[str, str], float]]
) -> dict[str, list[str]]:
    used = {o.name: [] for o in scenario.operators}
    for o in scenario.operators:
        seen = {a[o.name] for a, _ in combos}
        used[o.name] = [v for v in o.variants if v in seen]
    return used


def _placeable(
    scenario: Scenario,
    groups: list[WorkerGroup],
    links: GroupLinks,
    caps: Mapping[Key, float],
) -> dict[tuple[int, str], list[str]]:
    """Variants each group may run for each operator: it has capacity, and every operator input
    has some group that may run it and send to this group without backward traffic."""
    out: dict[tuple[int, str], list[str]] = {}
    for o in scenario.topo_order:
        feeders = [e.source for e in scenario.in_edges[o] if e.source not in scenario.source_map]
        for g in groups:
            ok = all(
                any((h.index, u) in out and links.allowed[h.index, g.index] for h in groups)
                for u in feeders
            )
            if not ok:
                continue
            vs = [v for v in scenario.operator_map[o].variants if (g.index, o, v) in caps]
            if vs:
                out[(g.index, o)] = vs
    return out


def _bandwidth_may_bind(
    scenario: Scenario,
    groups: list[WorkerGroup],
    links: GroupLinks,
    caps: Mapping[Key, float],
    variants: Mapping[str, list[str]],
) -> bool:
    """Could any single worker-to-worker flow exceed its link's bandwidth?"""
    for e in scenario.edges:
        u, v = e.source, e.target
        if u in scenario.source_map:
            continue
        for g in groups:
            kb_max = max((e.message_kb_for(var) for var in variants[u]), default=0.0)
            send = max((caps.get((g.index, u, var), 0.0) for var in variants[u]), default=0.0)
            send *= e.ratio
            if send <= 0 or kb_max <= 0:
                continue
            for h in groups:
                if (g.size == 1 and h.size == 1) or not links.allowed[g.index, h.index]:
                    continue
                recv = max((caps.get((h.index, v, var), 0.0) for var in variants[v]), default=0.0)
                if min(send, recv) * kb_max > links.bw_kb_s[g.index, h.index] * (1 - 1e-9):
                    return True
    return False


def _held(scenario: Scenario, plan: Plan) -> dict[str, tuple[str, str]]:
    """worker -> (operator, variant) it hosts in ``plan``."""
    out: dict[str, tuple[str, str]] = {}
    for o in scenario.operators:
        var = plan.model_assignment.get(o.name, o.variants[0])
        for s in plan.worker_assignment.get(o.name, []):
            if s.rate is None or s.rate > RATE_TOL:
                out.setdefault(s.worker, (o.name, var))
    return out


def _transport(
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


def _model_size(built: _Built) -> dict[str, int]:
    return {
        "columns": built.lm.num_cols,
        "rows": built.lm.num_rows,
        "integers": built.lm.num_integer,
        "combinations": len(built.combos),
    }
