"""A plan resolved for simulation: who serves what, routing weights, service-time fits, links.

Both simulators compile a plan the same way, through the cost model
(:func:`jbrl.planning.cost.evaluate_plan` at the plan's design rates), so they route, charge and reconfigure
identically:

* **Routing weights.** A worker's share of its operator's traffic is the rate the cost model
  gives it at the design rates (explicit rates, or JellyBean's fill order). Workers that get no
  rate there get no traffic and cost nothing. Traffic on an edge u->v from sender ``a`` goes to
  receiver ``b`` with probability ``flow(a, b) / sum_b flow(a, b)``, from the report's flows
  (explicit routing, or the proportional mix). At run time the mix is kept whatever the load:
  weights, not fill order.
* **Joins.** A task of a multi-input operator goes to one worker: the one chosen by the routing of
  its first input edge (in scenario order); its other inputs are sent to the same worker.
* **Availability.** Workers that are loading a model or crashed get no new traffic while another
  worker of the operator is available (weights renormalised); if none is, traffic queues at them.
* **Service times** are fitted per (operator, variant, worker) and batch size by the latency
  model (:func:`jbrl.planning.latency.batch_service`): a lognormal through p50 and p90;
  ``exponential`` and ``deterministic`` keep the same mean. ``batch`` per worker is the plan's
  batch size (1 where it names none); a batch of ``n`` requests takes the fit at ``n``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from jbrl.errors import InputError
from jbrl.planning.cost import RATE_TOL, CostReport, evaluate_plan
from jbrl.planning.latency import BatchService, ServiceFit, batch_service
from jbrl.planning.plan import Plan
from jbrl.scenario.model import KB_PER_GB, Scenario

KB_PER_MB = 1024.0


@dataclass(frozen=True)
class LinkCost:
    """Per-KB transfer time and dollars on one sender -> receiver path."""

    s_per_kb: float
    latency_s: float
    dollars_per_kb: float

    def seconds(self, kb: float, factor: float = 1.0) -> float:
        return (kb * self.s_per_kb + self.latency_s) * factor


@dataclass
class EdgeInfo:
    index: int
    source: str
    target: str
    u: int  # operator index of the source, or -1 - source index
    v: int  # operator index of the target
    ratio: float
    kb: float  # message size per v-task, for the plan's variant of u
    primary: bool  # first input edge of v: its routing picks v's worker


@dataclass
class Routing:
    """Routing tables for one set of unavailable workers."""

    op_workers: list[np.ndarray]  # per operator: worker indices with traffic
    op_share: list[np.ndarray]  # per operator: shares (sum 1), aligned with op_workers
    # per (edge index, sender id): receivers and cumulative probabilities (primary edges)
    table: dict[tuple[int, int], tuple[list[int], list[float]]] = field(default_factory=dict)


class CompiledPlan:
    """``plan`` on ``scenario`` at ``design_rates``, ready for either simulator.

    Worker indices are the scenario's worker order; sender ids are worker indices, or
    ``-1 - i`` for the scenario's i-th source.
    """

    def __init__(
        self,
        scenario: Scenario,
        plan: Plan,
        design_rates: Mapping[str, float] | None = None,
        service: str = "lognormal",
    ) -> None:
        self.scenario = scenario
        self.plan = plan
        self.design_rates = _design_rates(scenario, plan, design_rates)
        report = evaluate_plan(scenario, plan, self.design_rates, accuracy_target=-math.inf)
        bad = [v for v in report.violations if v.invalid or v.kind == "worker_reused"]
        if bad:
            raise InputError(
                "the plan cannot be simulated on this scenario: "
                + "; ".join(v.message for v in bad),
                field="plan",
            )
        self.report: CostReport = report
        self.workers = [w.name for w in scenario.workers]
        self.worker_index = {n: i for i, n in enumerate(self.workers)}
        self.sources = [s.name for s in scenario.sources]
        self.source_index = {n: i for i, n in enumerate(self.sources)}
        self.ops = list(scenario.topo_order)
        self.op_index = {n: i for i, n in enumerate(self.ops)}
        self.variant = {op: report.operators[op].variant for op in self.ops}
        self.price = np.array([w.price for w in scenario.workers])
        self._resolve_workers(service)
        self._resolve_edges()
        self._resolve_flows()
        self._links: dict[tuple[int, int], LinkCost] = {}
        self._routing: dict[frozenset[int], Routing] = {}

    def _resolve_workers(self, service: str) -> None:
        """Workers with traffic, their routing weights (the design rates the cost model gives
        them), service-time fits, capacities, and what the plan is charged."""
        scenario, report = self.scenario, self.report
        nw = len(self.workers)
        self.w_op = np.full(nw, -1, dtype=int)
        self.service: list[ServiceFit | None] = [None] * nw
        self.batch_service: list[BatchService | None] = [None] * nw
        self.batch = [1] * nw
        self.capacity = np.zeros(nw)
        weights: list[dict[int, float]] = [{} for _ in self.ops]
        for op in self.ops:
            oi = self.op_index[op]
            var = self.variant[op]
            loads = [w for w in report.operators[op].workers if scenario.profile(op, var, w.worker)]
            total = sum(w.rate for w in loads if w.rate > RATE_TOL)
            for w in loads:
                if total > 0 and w.rate <= RATE_TOL:
                    continue
                wi = self.worker_index[w.worker]
                # at zero design demand every assigned worker shares by capacity
                weights[oi][wi] = w.rate if total > 0 else w.capacity
                self.w_op[wi] = oi
                bs = batch_service(scenario, op, var, w.worker, service)
                self.batch_service[wi] = bs
                self.service[wi] = bs.fit(1)
                self.batch[wi] = w.batch
                self.capacity[wi] = w.capacity
        self.base_weights = weights
        self.deployed: dict[int, tuple[str, str]] = {
            wi: (self.ops[oi], self.variant[self.ops[oi]])
            for oi, ws in enumerate(weights)
            for wi in ws
        }
        self.charged = np.zeros(nw, dtype=bool)
        for wi in self.deployed:
            self.charged[wi] = True
        self.price_charged_per_s = float(self.price[self.charged].sum()) / 3600.0

    def _resolve_edges(self) -> None:
        """Edges with their operator indices and message sizes; per operator its input edges,
        the primary one (whose routing picks the worker) first."""
        scenario = self.scenario
        self.edges: list[EdgeInfo] = []
        seen_primary: set[str] = set()
        for i, e in enumerate(scenario.edges):
            u_is_src = e.source in scenario.source_map
            u = -1 - self.source_index[e.source] if u_is_src else self.op_index[e.source]
            kb = e.message_kb_for(self.variant.get(e.source, "default"))
            primary = e.target not in seen_primary
            seen_primary.add(e.target)
            self.edges.append(
                EdgeInfo(i, e.source, e.target, u, self.op_index[e.target], e.ratio, kb, primary)
            )
        self.in_edges: list[list[EdgeInfo]] = [[] for _ in self.ops]
        self.out_edges: dict[int, list[EdgeInfo]] = {}
        for ed in self.edges:
            self.in_edges[ed.v].append(ed)
            self.out_edges.setdefault(ed.u, []).append(ed)
        for lst in self.in_edges:
            lst.sort(key=lambda ed: not ed.primary)

    def _resolve_flows(self) -> None:
        """Base flow matrices from the cost report: per (edge, sender), rate to each receiver
        with traffic."""
        edge_of = {
            (e.source, e.target): ed for e, ed in zip(self.scenario.edges, self.edges, strict=True)
        }
        self.flow_weights: dict[tuple[int, int], dict[int, float]] = {}
        for f in self.report.flows:
            ed = edge_of.get(f.edge)
            if ed is None or f.receiver not in self.worker_index:
                continue
            b = self.worker_index[f.receiver]
            if b not in self.base_weights[ed.v]:
                continue
            sid = self.sender_id(f.sender)
            if sid is None:
                continue
            row = self.flow_weights.setdefault((ed.index, sid), {})
            row[b] = row.get(b, 0.0) + f.rate

    def fit_of(self, wi: int) -> ServiceFit:
        """The service-time fit of worker ``wi``, which must serve an operator of the plan."""
        fit = self.service[wi]
        if fit is None:
            raise ValueError(f"worker {self.workers[wi]} serves no operator of the plan")
        return fit

    # ------------------------------------------------------------------ names

    def sender_id(self, name: str) -> int | None:
        if name in self.worker_index:
            return self.worker_index[name]
        if name in self.source_index:
            return -1 - self.source_index[name]
        return None

    def sender_name(self, sid: int) -> str:
        return self.workers[sid] if sid >= 0 else self.sources[-1 - sid]

    def senders_of(self, ed: EdgeInfo) -> list[int]:
        """Sender ids of an edge: the source, or the workers of u with traffic."""
        return [ed.u] if ed.u < 0 else sorted(self.base_weights[ed.u])

    # ------------------------------------------------------------------ links

    def link(self, sender: int, receiver: int) -> LinkCost:
        key = (sender, receiver)
        lc = self._links.get(key)
        if lc is None:
            s = self.scenario
            info = s.link(self.sender_name(sender), self.workers[receiver])
            lc = LinkCost(
                s_per_kb=1.0 / (KB_PER_MB * info.bandwidth_mb_s),
                latency_s=info.latency_ms / 1000.0,
                dollars_per_kb=info.cost_per_gb * s.comm_cost_scale / KB_PER_GB,
            )
            self._links[key] = lc
        return lc

    # ------------------------------------------------------------------ routing

    def routing(self, down: frozenset[int] = frozenset()) -> Routing:
        """Routing tables when the workers in ``down`` (loading or crashed) are unavailable."""
        r = self._routing.get(down)
        if r is not None:
            return r
        op_workers: list[np.ndarray] = []
        op_share: list[np.ndarray] = []
        for ws in self.base_weights:
            idx = sorted(ws)
            up = [w for w in idx if w not in down and ws[w] > 0]
            use = up if up else [w for w in idx if ws[w] > 0]
            tot = sum(ws[w] for w in use)
            op_workers.append(np.array(use, dtype=int))
            op_share.append(np.array([ws[w] / tot for w in use]) if tot > 0 else np.zeros(0))
        table: dict[tuple[int, int], tuple[list[int], list[float]]] = {}
        for ed in self.edges:
            if not ed.primary:
                continue
            share = dict(zip(op_workers[ed.v].tolist(), op_share[ed.v].tolist(), strict=True))
            for sid in self.senders_of(ed):
                row = self.flow_weights.get((ed.index, sid), {})
                cand = {b: w for b, w in row.items() if b in share and w > 0}
                if not cand:
                    cand = share
                tot = sum(cand.values())
                recv = sorted(cand)
                cum, acc = [], 0.0
                for b in recv:
                    acc += cand[b] / tot if tot > 0 else 0.0
                    cum.append(acc)
                if cum:  # an operator without workers has no entry: its tasks are dropped
                    cum[-1] = 1.0
                    table[(ed.index, sid)] = (recv, cum)
        r = Routing(op_workers, op_share, table)
        self._routing[down] = r
        return r

    def receiver_probs(self, routing: Routing, ed: EdgeInfo, sid: int) -> dict[int, float]:
        """Where v-tasks fed by sender ``sid`` on edge ``ed`` go (secondary edges follow v's
        shares, since the primary input picks the worker)."""
        if ed.primary and (ed.index, sid) in routing.table:
            recv, cum = routing.table[(ed.index, sid)]
            out, prev = {}, 0.0
            for b, c in zip(recv, cum, strict=True):
                out[b] = c - prev
                prev = c
            return out
        return dict(
            zip(routing.op_workers[ed.v].tolist(), routing.op_share[ed.v].tolist(), strict=True)
        )


def _design_rates(
    scenario: Scenario, plan: Plan, design_rates: Mapping[str, float] | None
) -> dict[str, float]:
    """The rates the plan was made for: given, else the plan's ``meta["rates"]`` when they name
    the scenario's sources, else the scenario's nominal rates."""
    if design_rates is None:
        meta_rates = plan.meta.get("rates") if isinstance(plan.meta, dict) else None
        if isinstance(meta_rates, Mapping) and set(meta_rates) <= set(scenario.source_map):
            design_rates = {k: float(v) for k, v in meta_rates.items()}
    return dict(design_rates or scenario.nominal_rates())


def load_changes(old: CompiledPlan | None, new: CompiledPlan) -> dict[int, float]:
    """Workers of ``new`` whose (operator, variant) differs from ``old``: index -> load time (s)."""
    out: dict[int, float] = {}
    for wi, (op, var) in new.deployed.items():
        if old is None or old.deployed.get(wi) != (op, var):
            out[wi] = new.scenario.load_time(op, var, new.workers[wi])
    return out
