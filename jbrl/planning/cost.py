"""Cost model and constraint checks of a plan (ARCHITECTURE.md, "Plan and cost semantics").

* compute cost ($/hour): the full price of every worker that serves anything;
* communication cost ($/hour): for every edge u->v and every flow (req/s of v) from worker (or
  source) a to worker b: ``flow * msg_KB * link_cost(a, b) * scale * 3600 / 1024**2``;
  without explicit routing, ``flow(a, b) = rate(v) * share_u(a) * share_v(b)``;
* workers without an explicit rate are filled in list order, each taking
  ``min(capacity, remaining demand)`` (JellyBean's rule).

:func:`evaluate_plan` never raises for a plan that parses: it names every violated constraint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from jbrl.planning.plan import Flow, Plan
from jbrl.scenario.model import KB_PER_GB, SECONDS_PER_HOUR, Scenario

# Relative tolerance on rates: planners return floats, and a plan that serves 39.9999999 of
# 40 req/s is not short of capacity.
RATE_TOL = 1e-6

ViolationKind = Literal[
    "unknown_operator",
    "unknown_variant",
    "unknown_worker",
    "missing_variant",
    "worker_reused",
    "no_profile",
    "capacity_short",
    "capacity_exceeded",
    "accuracy_below_target",
    "accuracy_unknown",
    "backward_traffic",
    "routing_mismatch",
    "unknown_flow_endpoint",
]
# Violations that mean the plan does not fit the scenario at all (exit 2); the others make a
# well-formed plan infeasible (exit 3).
INVALID_KINDS = {
    "unknown_operator",
    "unknown_variant",
    "unknown_worker",
    "missing_variant",
    "unknown_flow_endpoint",
}


@dataclass(frozen=True)
class Violation:
    kind: str
    message: str

    @property
    def invalid(self) -> bool:
        return self.kind in INVALID_KINDS


@dataclass
class WorkerLoad:
    worker: str
    rate: float
    capacity: float
    utilization: float
    price: float
    tier: int


@dataclass
class OperatorLoad:
    operator: str
    variant: str
    demand: float
    capacity: float
    served: float
    utilization: float
    workers: list[WorkerLoad] = field(default_factory=list)


@dataclass
class CostReport:
    """What a plan costs and which constraints it breaks."""

    compute_cost: float
    communication_cost: float
    accuracy: float | None
    accuracy_target: float
    operators: dict[str, OperatorLoad]
    flows: list[Flow]
    violations: list[Violation]
    rates: dict[str, float]

    @property
    def total_cost(self) -> float:
        return self.compute_cost + self.communication_cost

    @property
    def feasible(self) -> bool:
        return not self.violations

    @property
    def invalid(self) -> bool:
        return any(v.invalid for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "compute_cost": self.compute_cost,
            "communication_cost": self.communication_cost,
            "total_cost": self.total_cost,
            "accuracy": self.accuracy,
            "accuracy_target": self.accuracy_target,
            "feasible": self.feasible,
            "rates": self.rates,
            "operators": {
                name: {
                    "variant": o.variant,
                    "demand": o.demand,
                    "capacity": o.capacity,
                    "served": o.served,
                    "utilization": o.utilization,
                    "workers": [asdict(w) for w in o.workers],
                }
                for name, o in self.operators.items()
            },
            "violations": [{"kind": v.kind, "message": v.message} for v in self.violations],
        }


def comm_cost_of_flow(scenario: Scenario, flow_rate: float, kb: float, sender: str, receiver: str):
    """$/hour of ``flow_rate`` req/s of ``kb`` each from sender to receiver (inf if forbidden)."""
    info = scenario.link(sender, receiver)
    if not info.allowed:
        return math.inf
    return (
        flow_rate * kb * info.cost_per_gb * scenario.comm_cost_scale * SECONDS_PER_HOUR / KB_PER_GB
    )


def evaluate_plan(
    scenario: Scenario,
    plan: Plan,
    rates: Mapping[str, float] | None = None,
    accuracy_target: float | None = None,
) -> CostReport:
    """Cost and check ``plan`` at the given source rates (nominal rates by default)."""
    violations: list[Violation] = []

    def bad(kind: str, message: str) -> None:
        violations.append(Violation(kind, message))

    target = scenario.slo.min_accuracy if accuracy_target is None else accuracy_target
    rates_d = dict(scenario.nominal_rates() if rates is None else rates)
    demand = scenario.demand(rates_d)
    ops = scenario.operator_map
    workers = scenario.worker_map

    # ---- names
    for op, var in plan.model_assignment.items():
        if op not in ops:
            bad("unknown_operator", f"model_assignment names unknown operator {op!r}")
        elif var not in ops[op].variants:
            bad(
                "unknown_variant",
                f"model_assignment: {var!r} is not a variant of {op!r} "
                f"(variants: {', '.join(ops[op].variants)})",
            )
    variant: dict[str, str] = {}
    for o in scenario.operators:
        v = plan.model_assignment.get(o.name)
        if v is None:
            if len(o.variants) == 1:
                v = o.variants[0]
            else:
                bad("missing_variant", f"model_assignment has no variant for {o.name!r}")
                v = o.variants[0]
        variant[o.name] = v
    for op in plan.worker_assignment:
        if op not in ops:
            bad("unknown_operator", f"worker_assignment names unknown operator {op!r}")
    seen: dict[str, str] = {}
    for op, shares in plan.worker_assignment.items():
        for s in shares:
            if s.worker not in workers:
                bad("unknown_worker", f"worker_assignment.{op}: unknown worker {s.worker!r}")
            elif s.worker in seen:
                bad(
                    "worker_reused",
                    f"worker {s.worker!r} is assigned to {seen[s.worker]!r} and {op!r} "
                    "(a worker hosts at most one operator)",
                )
            else:
                seen[s.worker] = op

    # ---- rates per worker (explicit, then fill order)
    loads: dict[str, OperatorLoad] = {}
    for o in scenario.operators:
        op, var = o.name, variant[o.name]
        shares = [s for s in plan.worker_assignment.get(op, []) if s.worker in workers]
        d = demand[op]
        caps = {s.worker: scenario.capacity(op, var, s.worker) for s in shares}
        for s in shares:
            if caps[s.worker] <= 0 and var in o.variants:
                bad("no_profile", f"{op!r} variant {var!r} has no profile on worker {s.worker!r}")
        explicit = sum(s.rate for s in shares if s.rate is not None)
        remaining = max(0.0, d - explicit)
        served: dict[str, float] = {}
        for s in shares:
            if s.rate is not None:
                r = s.rate
                if r > caps[s.worker] * (1 + RATE_TOL) + 1e-9:
                    bad(
                        "capacity_exceeded",
                        f"{op!r} on {s.worker!r}: rate {r:.4g} req/s exceeds capacity "
                        f"{caps[s.worker]:.4g} req/s of {var!r}",
                    )
            else:
                r = min(caps[s.worker], remaining)
                remaining -= r
            served[s.worker] = served.get(s.worker, 0.0) + r
        total_served = sum(served.values())
        capacity = sum(caps.values())
        if total_served < d * (1 - RATE_TOL) - 1e-9:
            bad(
                "capacity_short",
                f"{op!r} ({var}) needs {d:.4g} req/s but its workers serve {total_served:.4g} "
                f"(capacity {capacity:.4g} req/s)",
            )
        wl = [
            WorkerLoad(
                worker=w,
                rate=r,
                capacity=caps[w],
                utilization=(r / caps[w]) if caps[w] > 0 else (math.inf if r > 0 else 0.0),
                price=workers[w].price,
                tier=scenario.worker_tier[w],
            )
            for w, r in served.items()
        ]
        loads[op] = OperatorLoad(
            operator=op,
            variant=var,
            demand=d,
            capacity=capacity,
            served=total_served,
            utilization=(d / capacity) if capacity > 0 else (math.inf if d > 0 else 0.0),
            workers=wl,
        )

    # ---- compute cost: every worker that serves anything, once
    used = {w.worker for o in loads.values() for w in o.workers if w.rate > RATE_TOL}
    compute = sum(workers[w].price for w in used)

    # ---- communication cost
    explicit_edges: dict[tuple[str, str], list[Flow]] = {}
    for f in plan.routing or []:
        explicit_edges.setdefault(f.edge, []).append(f)
    edge_keys = {(e.source, e.target) for e in scenario.edges}
    for key in explicit_edges:
        if key not in edge_keys:
            bad("unknown_flow_endpoint", f"routing names edge {list(key)} that is not in the DAG")
    flows: list[Flow] = []
    comm = 0.0
    srcs = scenario.source_map
    for e in scenario.edges:
        u, v = e.source, e.target
        u_var = variant.get(u, "default")
        kb = e.message_kb_for(u_var)
        # shares of u's traffic: a source sends from itself
        if u in srcs:
            u_share = {u: 1.0}
        else:
            lu = loads[u]
            u_share = {w.worker: (w.rate / lu.served) for w in lu.workers if lu.served > 0}
        lv = loads[v]
        if (u, v) in explicit_edges:
            edge_flows = explicit_edges[(u, v)]
            _check_routing(scenario, e.ratio, u, v, u_share, loads, edge_flows, bad)
        else:
            edge_flows = [
                Flow((u, v), a, w.worker, lv.served * sa * (w.rate / lv.served))
                for a, sa in u_share.items()
                for w in lv.workers
                if lv.served > 0 and sa > 0 and w.rate > 0
            ]
        for f in edge_flows:
            if f.receiver not in workers or (f.sender not in workers and f.sender not in srcs):
                continue
            if f.rate <= 0:
                continue
            c = comm_cost_of_flow(scenario, f.rate, kb, f.sender, f.receiver)
            if math.isinf(c):
                bad(
                    "backward_traffic",
                    f"edge {u}->{v}: {f.rate:.4g} req/s from {f.sender!r} (tier "
                    f"{scenario.endpoint_tier(f.sender)}) back to {f.receiver!r} (tier "
                    f"{scenario.worker_tier[f.receiver]}); backward traffic is forbidden",
                )
                continue
            comm += c
            flows.append(f)

    # ---- accuracy
    acc = scenario.accuracy_of(variant)
    if acc is None:
        bad("accuracy_unknown", f"the accuracy table has no entry for variants {variant}")
    elif acc < target - 1e-9:
        bad("accuracy_below_target", f"accuracy {acc:g} is below the target {target:g}")
    return CostReport(
        compute_cost=compute,
        communication_cost=comm,
        accuracy=None if acc is None or math.isinf(acc) else acc,
        accuracy_target=target,
        operators=loads,
        flows=flows,
        violations=violations,
        rates=rates_d,
    )


def _check_routing(
    scenario: Scenario,
    ratio: float,
    u: str,
    v: str,
    u_share: dict[str, float],
    loads: dict[str, OperatorLoad],
    flows: list[Flow],
    bad: Any,
) -> None:
    """Flows into each v worker must equal what it serves; out of each u worker, at most
    what it serves times the edge ratio."""
    v_rates = {w.worker: w.rate for w in loads[v].workers}
    if u in scenario.source_map:
        u_out = {u: math.inf}
    else:
        u_out = {w.worker: w.rate * ratio for w in loads[u].workers}
    into: dict[str, float] = {}
    out: dict[str, float] = {}
    for f in flows:
        if f.sender not in u_out:
            bad(
                "unknown_flow_endpoint",
                f"routing on {u}->{v}: sender {f.sender!r} does not serve {u!r}",
            )
        if f.receiver not in v_rates:
            bad(
                "unknown_flow_endpoint",
                f"routing on {u}->{v}: receiver {f.receiver!r} does not serve {v!r}",
            )
        into[f.receiver] = into.get(f.receiver, 0.0) + f.rate
        out[f.sender] = out.get(f.sender, 0.0) + f.rate
    tol = lambda x: RATE_TOL * max(1.0, x) + 1e-6  # noqa: E731
    for w, r in v_rates.items():
        if abs(into.get(w, 0.0) - r) > tol(r):
            bad(
                "routing_mismatch",
                f"routing on {u}->{v}: {w!r} receives {into.get(w, 0.0):.6g} req/s but serves "
                f"{r:.6g}",
            )
    for w, r in out.items():
        cap = u_out.get(w, 0.0)
        if r > cap + tol(cap if math.isfinite(cap) else r):
            bad(
                "routing_mismatch",
                f"routing on {u}->{v}: {w!r} sends {r:.6g} req/s but produces only {cap:.6g}",
            )
