"""JellyBean's planning heuristic (Wu et al., PVLDB 16(3) 2022, arXiv 2205.04713, Sec. 4).

Written from the paper's description (and the behaviour of its published optimizer) in two steps:

1. **Model selection by beam search** over per-operator accuracy profiles
   (``scenario.accuracy.per_operator``). Operators are visited from the sink backwards; a
   partial assignment carries the minimum output accuracy each not-yet-assigned operator must
   reach. For an operator with inputs, every variant whose samples reach the requirement
   expands into one child per qualifying sample (the sample's input accuracies become the
   inputs' requirements); operators without inputs expand into one child per variant that can
   reach the requirement. After each operator the children are ranked by model cost
   (``sum weight * cost``, then by the pending requirements, lowest first) and the best
   ``beam_k`` survive. Without per-operator profiles the end-to-end table is used: the
   combinations meeting the target, ranked by a proxy cost (required rate times the mean
   planning latency over the workers that can run the variant, i.e. the worker-seconds per
   second the variant needs), best ``beam_k`` kept.
2. **Worker assignment, tier by tier, greedily.** For each of up to ``max_orders`` topological
   orders of the operators, operators are placed one by one; each search state keeps the
   workers used so far. An operator may use free workers from the highest tier of its inputs up
   to tier i, for every i; within that range the lowest tier's workers that can serve the whole
   demand alone are preferred (cheapest price + communication cost of the traffic they would
   receive); otherwise workers are taken in order of (price + communication) per req/s of
   capacity until the demand is met, switching to the cheapest single finisher of the lowest
   remaining tier as soon as one can serve the remainder. The best ``best_states`` states (by
   compute + communication cost so far) survive each step. Traffic mixes in proportion to the
   workers' rates, as in the cost model without explicit routing.

The plan with the lowest total over all model candidates and final states wins (ties: higher
accuracy). Deviations from the published optimizer, all documented in the report: partial
assignments with no feasible variant are dropped instead of aborting the search; duplicate
model candidates and duplicate search states are merged; candidates whose end-to-end accuracy
(from the table) is below the target are skipped (``check_accuracy``); topological orders are
orders of the operators (sources are always available first).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from jbrl.errors import InputError
from jbrl.planning.base import PlanResult, finish, full_rates, target_accuracy
from jbrl.planning.groups import group_links, worker_groups
from jbrl.planning.plan import Plan, WorkerShare
from jbrl.scenario.model import Scenario

TIE_RTOL = 1e-5  # numpy.allclose's defaults, as the published optimizer compares totals
TIE_ATOL = 1e-8


@dataclass(frozen=True)
class ModelCandidate:
    """A full variant assignment from model selection, its model cost and accuracy."""

    assignment: dict[str, str]
    model_cost: float
    accuracy: float | None


@dataclass
class _State:
    cost: float
    compute: float
    tiers: dict[str, int]
    assign: dict[str, list[tuple[int, float]]]
    used: np.ndarray

    def key(self) -> tuple[object, ...]:
        return tuple(sorted((op, tuple(ws)) for op, ws in self.assign.items()))


class JellyBeanPlanner:
    """JellyBean's heuristic: beam search over accuracy profiles, then tier-by-tier greedy.

    Options (JellyBean's configuration on its VQA inputs is the default):
        beam_k: model assignments kept per beam-search step (BEAM_SEARCH.BEST_K = 10).
        sample_limit: accuracy samples considered per variant (ACC_PROFILE_SAMPLE_LIMIT: all).
        expansion_limit: children per partial assignment (PER_ASSIGNMENT_NODE_EXPANSION_LIMIT).
        max_orders: topological orders tried (WORKER_ASSIGNMENT.MAX_NUM_ASSIGN_ORDERS = 10).
        best_states: search states kept per step (WORKER_ASSIGNMENT.BEST_K_ASSIGNMENTS = 10).
        check_accuracy: skip candidates whose end-to-end accuracy is below the target.
        workers: only these workers may be used (default: all).
        max_util: plan with this fraction of each worker's capacity (not in JellyBean; 1.0).
    """

    name = "jellybean"

    def __init__(
        self,
        beam_k: int = 10,
        sample_limit: int | None = None,
        expansion_limit: int | None = None,
        max_orders: int = 10,
        best_states: int = 10,
        check_accuracy: bool = True,
        workers: Sequence[str] | None = None,
        max_util: float = 1.0,
        name: str | None = None,
    ) -> None:
        for label, value in (("beam_k", beam_k), ("max_orders", max_orders)):
            if value < 1:
                raise InputError("must be >= 1", field=label, value=value)
        if best_states < 1:
            raise InputError("must be >= 1", field="best_states", value=best_states)
        if not (0 < max_util <= 1.0 + 1e-12):
            raise InputError("must be in (0, 1]", field="max_util", value=max_util)
        self.max_util = float(max_util)
        self.beam_k = beam_k
        self.sample_limit = sample_limit
        self.expansion_limit = expansion_limit
        self.max_orders = max_orders
        self.best_states = best_states
        self.check_accuracy = check_accuracy
        self.workers = list(workers) if workers is not None else None
        if name is not None:
            self.name = name

    # ------------------------------------------------------------------ public

    def plan(
        self,
        scenario: Scenario,
        rates: Mapping[str, float] | None = None,
        accuracy: float | None = None,
    ) -> PlanResult:
        t0 = time.perf_counter()
        rates_d = full_rates(scenario, rates)
        target = target_accuracy(scenario, accuracy)
        demand = scenario.demand(rates_d)
        candidates, ranking = self.model_candidates(scenario, target, demand)
        ctx = _Context(scenario, demand, self.workers, self.max_util)
        best: tuple[float, float, ModelCandidate, _State] | None = None
        tried = 0
        for cand in candidates:
            acc = cand.accuracy
            if self.check_accuracy and (acc is None or acc < target - 1e-9):
                continue
            tried += 1
            for state in self.assign_workers(ctx, cand.assignment):
                a = -math.inf if acc is None else acc
                if best is None:
                    best = (state.cost, a, cand, state)
                    continue
                close = abs(state.cost - best[0]) <= TIE_ATOL + TIE_RTOL * abs(best[0])
                if (state.cost < best[0] and not close) or (close and a > best[1]):
                    best = (state.cost, a, cand, state)
        info = {"variant_ranking": ranking, "model_candidates": len(candidates), "tried": tried}
        if best is None:
            from jbrl.planning.milp import MilpPlanner, infeasibility_reason

            probe = MilpPlanner(
                mip_rel_gap=1e-4, time_limit=30.0, workers=self.workers, max_util=self.max_util
            )
            msg = "the heuristic found no plan"
            reason = infeasibility_reason(scenario, rates_d, target, probe, msg)
            if reason["message"] == msg and candidates:
                reason["message"] = (
                    "the heuristic found no plan (the exact planner may: try --solver milp)"
                )
            return PlanResult.infeasible(self.name, reason, time.perf_counter() - t0, **info)
        _, _, cand, state = best
        names = ctx.names
        worker_assignment = {
            op: [WorkerShare(names[w], rate) for w, rate in state.assign[op]]
            for op in scenario.topo_order
            if state.assign.get(op)
        }
        plan = Plan(dict(cand.assignment), worker_assignment, None, {})
        info["heuristic_cost"] = state.cost
        result, _ = finish(
            scenario,
            plan,
            self.name,
            "feasible",
            rates_d,
            target,
            time.perf_counter() - t0,
            None,
            info,
        )
        return result

    # ------------------------------------------------------------------ model selection

    def model_candidates(
        self, scenario: Scenario, target: float, demand: Mapping[str, float]
    ) -> tuple[list[ModelCandidate], str]:
        """Variant assignments to try, and which ranking produced them."""
        found = self.beam_search(scenario, target)
        if found is not None:
            return found, "beam search over per-operator accuracy profiles"
        return (
            self.proxy_candidates(scenario, target, demand),
            "end-to-end table ranked by required rate x mean planning latency",
        )

    def beam_search(self, scenario: Scenario, target: float) -> list[ModelCandidate] | None:
        """Beam search; None when the scenario has no (complete) per-operator profiles."""
        profiles = {p.op: p for p in scenario.accuracy.per_operator}
        multi = [o.name for o in scenario.operators if len(o.variants) > 1]
        if not profiles or any(o not in profiles for o in multi):
            return None
        inputs_of = {op: [i for i in p.inputs if i in profiles] for op, p in profiles.items()}
        sinks = [op for op in profiles if not any(op in ins for ins in inputs_of.values())]
        order = sinks + [
            o for o in reversed(scenario.topo_order) if o in profiles and o not in sinks
        ]

        def model_cost(assign: Mapping[str, str]) -> float:
            return sum(profiles[o].weight * profiles[o].variants[v].cost for o, v in assign.items())

        beam: list[tuple[dict[str, str], dict[str, float]]] = [({}, dict.fromkeys(sinks, target))]
        for op in order:
            prof = profiles[op]
            children: list[tuple[dict[str, str], dict[str, float]]] = []
            for assign, reqs in beam:
                need = reqs.get(op, -math.inf)
                rest = {k: a for k, a in reqs.items() if k != op}
                made = 0
                for var, va in prof.variants.items():
                    outs = [s.output_acc for s in va.samples]
                    if outs and max(outs) < need:
                        continue
                    if not prof.inputs or not va.samples:
                        children.append(({**assign, op: var}, dict(rest)))
                        continue
                    samples = sorted(
                        (s for s in va.samples if s.output_acc >= need),
                        key=lambda s: (s.output_acc, tuple(s.inputs_acc)),
                    )
                    if self.sample_limit is not None:
                        samples = samples[: self.sample_limit]
                    for s in samples:
                        if self.expansion_limit is not None and made >= self.expansion_limit:
                            break
                        new = dict(rest)
                        for name, a in zip(prof.inputs, s.inputs_acc, strict=False):
                            if name in profiles:
                                new[name] = max(new.get(name, -math.inf), a)
                        children.append(({**assign, op: var}, new))
                        made += 1
            if not children:
                return []
            keys = list(children[0][1])
            children.sort(
                key=lambda c: (
                    model_cost(c[0]),
                    tuple(c[1].get(k, -math.inf) for k in keys),
                )
            )
            beam = children[: self.beam_k]
        out: list[ModelCandidate] = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        for assign, _ in beam:
            full = {o.name: assign.get(o.name, o.variants[0]) for o in scenario.operators}
            key = tuple(sorted(full.items()))
            if key in seen:
                continue
            seen.add(key)
            out.append(ModelCandidate(full, model_cost(assign), scenario.accuracy_of(full)))
        return out

    def proxy_candidates(
        self, scenario: Scenario, target: float, demand: Mapping[str, float]
    ) -> list[ModelCandidate]:
        """End-to-end combinations meeting ``target``, cheapest proxy cost first."""
        allowed = set(self.workers) if self.workers is not None else None
        mean_ms: dict[tuple[str, str], float] = {}
        for o in scenario.operators:
            for v in o.variants:
                ms = [
                    1000.0 / c
                    for w in scenario.workers
                    if (allowed is None or w.name in allowed)
                    and (c := scenario.capacity(o.name, v, w.name)) > 0
                ]
                mean_ms[(o.name, v)] = float(np.mean(ms)) if ms else math.inf
        scored = []
        for assign, acc in scenario.variant_combinations():
            if acc < target - 1e-9:
                continue
            proxy = sum(demand[o] * mean_ms[(o, v)] / 1000.0 for o, v in assign.items())
            scored.append((proxy, -acc, ModelCandidate(dict(assign), proxy, acc)))
        scored.sort(key=lambda t: (t[0], t[1]))
        return [c for _, _, c in scored[: self.beam_k]]

    # ------------------------------------------------------------------ worker assignment

    def assign_workers(self, ctx: _Context, assignment: Mapping[str, str]) -> list[_State]:
        """Best final states over up to ``max_orders`` topological orders."""
        caps = ctx.capacities(assignment)
        finals: list[_State] = []
        for order in ctx.orders(self.max_orders):
            states = [_State(0.0, 0.0, {}, {}, np.zeros(ctx.n, dtype=bool))]
            for op in order:
                new: list[_State] = []
                for st in states:
                    new.extend(self._place(ctx, st, op, assignment, caps[op]))
                new.sort(key=lambda s: s.cost)
                states = _dedupe(new)[: self.best_states]
                if not states:
                    break
            else:
                finals.extend(states)
        finals.sort(key=lambda s: s.cost)
        return _dedupe(finals)[: self.best_states]

    def _place(
        self,
        ctx: _Context,
        st: _State,
        op: str,
        assignment: Mapping[str, str],
        cap: np.ndarray,
    ) -> list[_State]:
        """Children of ``st`` with ``op`` placed on tiers [highest input tier, i] for each i."""
        s = ctx.scenario
        need = ctx.demand[op]
        lo = 0
        unit = np.zeros(ctx.n)  # $/hour per req/s of op received by each worker
        for e in s.in_edges[op]:
            u = e.source
            if u in s.source_map:
                lo = max(lo, s.source_tier[u])
                unit += e.message_kb_for("default") * ctx.source_cost[u]
            else:
                lo = max(lo, st.tiers[u])
                kb = e.message_kb_for(assignment[u])
                du = ctx.demand[u]
                if du > 0 and kb > 0:
                    share = np.zeros(ctx.num_groups)
                    for w, r in st.assign[u]:
                        share[ctx.group[w]] += r / du
                    nz = share > 0  # 0 * inf (a forbidden link nobody uses) must stay 0
                    unit += kb * (share[nz] @ ctx.group_cost[nz])[ctx.group]
        out: list[_State] = []
        if need <= 0:
            tiers = {**st.tiers, op: lo}
            return [_State(st.cost, st.compute, tiers, {**st.assign, op: []}, st.used)]
        base = (~st.used) & (cap > 0) & np.isfinite(unit) & (ctx.tier >= lo)
        for top in range(lo, ctx.num_tiers):
            avail = np.flatnonzero(base & (ctx.tier <= top))
            if avail.size == 0:
                continue
            picks = _greedy_fill(need, avail, cap, ctx.price, ctx.tier, unit)
            if picks is None:
                continue
            used = st.used.copy()
            compute = 0.0
            comm = 0.0
            for w, r in picks:
                used[w] = True
                compute += ctx.price[w]
                comm += r * unit[w]
            out.append(
                _State(
                    st.cost + compute + comm,
                    st.compute + compute,
                    {**st.tiers, op: int(max(ctx.tier[w] for w, _ in picks))},
                    {**st.assign, op: picks},
                    used,
                )
            )
        return out


class _Context:
    """Arrays over the allowed workers, shared by every search state."""

    def __init__(
        self,
        scenario: Scenario,
        demand: Mapping[str, float],
        workers: Sequence[str] | None,
        max_util: float = 1.0,
    ) -> None:
        self.scenario = scenario
        self.max_util = max_util
        self.demand = dict(demand)
        names = [w.name for w in scenario.workers] if workers is None else list(workers)
        for w in names:
            if w not in scenario.worker_map:
                raise InputError("unknown worker", field="workers", value=w)
        self.names = names
        self.n = len(names)
        self.tier = np.array([scenario.worker_tier[w] for w in names], dtype=int)
        self.price = np.array([scenario.worker_map[w].price for w in names])
        self.num_tiers = len(scenario.tiers)
        groups = worker_groups(scenario, names, aggregate=True)
        links = group_links(scenario, groups)
        index = {w: i for i, w in enumerate(names)}
        self.group = np.zeros(self.n, dtype=int)
        for g in groups:
            for m in g.members:
                self.group[index[m]] = g.index
        self.num_groups = len(groups)
        self.group_cost = links.cost
        self.source_cost = {s: c[self.group] for s, c in links.source_cost.items()}
        self._orders: list[list[str]] | None = None

    def capacities(self, assignment: Mapping[str, str]) -> dict[str, np.ndarray]:
        s = self.scenario
        return {
            o: np.array([s.capacity(o, assignment[o], w) for w in self.names]) * self.max_util
            for o in s.topo_order
        }

    def orders(self, limit: int) -> list[list[str]]:
        """Up to ``limit`` topological orders of the operators, lexicographic by topo index."""
        if self._orders is not None and len(self._orders) >= limit:
            return self._orders[:limit]
        s = self.scenario
        ops = s.topo_order
        pos = {o: i for i, o in enumerate(ops)}
        preds = {o: {e.source for e in s.in_edges[o] if e.source in pos} for o in ops}
        found: list[list[str]] = []

        def extend(prefix: list[str], placed: set[str]) -> None:
            if len(found) >= limit:
                return
            if len(prefix) == len(ops):
                found.append(list(prefix))
                return
            for o in ops:
                if o not in placed and preds[o] <= placed:
                    prefix.append(o)
                    placed.add(o)
                    extend(prefix, placed)
                    placed.discard(o)
                    prefix.pop()
                    if len(found) >= limit:
                        return

        extend([], set())
        self._orders = found
        return found


def _greedy_fill(
    need: float,
    avail: np.ndarray,
    cap: np.ndarray,
    price: np.ndarray,
    tier: np.ndarray,
    unit: np.ndarray,
) -> list[tuple[int, float]] | None:
    """JellyBean's per-tier greedy: workers and rates covering ``need`` req/s, or None."""
    lowest = tier[avail].min()
    single = avail[(tier[avail] == lowest) & (cap[avail] >= need)]
    if single.size:
        return [(_cheapest_finisher(single, need, cap, price, unit), need)]
    total = price[avail] + cap[avail] * unit[avail]
    per_unit = total / cap[avail]
    order = avail[np.lexsort((total, per_unit))]
    # suffix facts: the lowest tier left after position k, and the largest capacity in it
    t_ord = tier[order]
    c_ord = cap[order]
    suffix_low = np.minimum.accumulate(t_ord[::-1])[::-1]
    suffix_cap = {}
    for t in np.unique(t_ord):
        masked = np.where(t_ord == t, c_ord, -np.inf)
        suffix_cap[int(t)] = np.maximum.accumulate(masked[::-1])[::-1]
    picks: list[tuple[int, float]] = []
    left = need
    for k, w in enumerate(order):
        if cap[w] >= left:
            picks.append((int(w), left))
            return picks
        picks.append((int(w), float(cap[w])))
        left -= cap[w]
        if k + 1 < len(order):
            low = int(suffix_low[k + 1])
            if suffix_cap[low][k + 1] > left:
                rest = order[k + 1 :]
                finishers = rest[(tier[rest] == low) & (cap[rest] > left)]
                picks.append((_cheapest_finisher(finishers, left, cap, price, unit), left))
                return picks
    return None


def _cheapest_finisher(
    cands: np.ndarray, amount: float, cap: np.ndarray, price: np.ndarray, unit: np.ndarray
) -> int:
    """The candidate with the lowest price + communication for ``amount`` (ties: smaller)."""
    score = price[cands] + amount * unit[cands]
    return int(cands[np.lexsort((cap[cands], score))[0]])


def _dedupe(states: list[_State]) -> list[_State]:
    seen: set[tuple[object, ...]] = set()
    out = []
    for st in states:
        k = st.key()
        if k not in seen:
            seen.add(k)
            out.append(st)
    return out
