"""Cost model and constraint checks of a plan (ARCHITECTURE.md, "Plan and cost semantics").

* compute cost ($/hour): the full price of every worker that serves anything;
* communication cost ($/hour): for every edge u->v and every flow (req/s of v) from worker (or
  source) a to worker b: ``flow * msg_KB * link_cost(a, b) * scale * 3600 / 1024**2``;
  without explicit routing, ``flow(a, b) = rate(v) * share_u(a) * share_v(b)``;
* workers without an explicit rate are filled in list order, each taking
  ``min(capacity, remaining demand)`` (JellyBean's rule);
* a worker's capacity at batch size ``b`` is ``b * 1000 / planning latency of a batch of b``
  (:meth:`~jbrl.scenario.model.Scenario.capacity`); a batch size its profile does not list is an
  ``unknown_batch`` violation, one of those that mean the plan does not fit the scenario.

:func:`evaluate_plan` never raises for a plan that parses: it names every violated constraint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from jbrl.planning.plan import Flow, Plan, WorkerShare
from jbrl.scenario.model import KB_PER_GB, SECONDS_PER_HOUR, Edge, Scenario

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
    "latency_at_risk",
    "unknown_batch",
]
# Violations that mean the plan does not fit the scenario at all (exit 2); the others make a
# well-formed plan infeasible (exit 3).
INVALID_KINDS: set[ViolationKind] = {
    "unknown_operator",
    "unknown_variant",
    "unknown_worker",
    "missing_variant",
    "unknown_flow_endpoint",
    "unknown_batch",
}


@dataclass(frozen=True)
class Violation:
    """One broken constraint: what kind, and a message with the names and numbers."""

    kind: ViolationKind
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
    batch: int = 1


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


def comm_cost_of_flow(
    scenario: Scenario, flow_rate: float, kb: float, sender: str, receiver: str
) -> float:
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
    """Cost and check ``plan`` at the given source rates (nominal rates by default).

    The steps, each adding the violations it finds in this order: the names the plan uses,
    the rate every worker serves, the compute cost, the flows on every edge and their cost, the
    accuracy of the chosen variants.
    """
    violations: list[Violation] = []
    target = scenario.slo.min_accuracy if accuracy_target is None else accuracy_target
    rates_d = dict(scenario.nominal_rates() if rates is None else rates)
    demand = scenario.demand(rates_d)
    _check_model_assignment(scenario, plan, violations)
    variant = _variants(scenario, plan, violations)
    _check_worker_assignment(scenario, plan, violations)
    loads = {
        o.name: _operator_load(scenario, plan, o.name, variant[o.name], demand[o.name], violations)
        for o in scenario.operators
    }
    # compute cost: every worker that serves anything, once, summed in plan order (a set's
    # order would change the last bits of the sum from one process to the next)
    used = dict.fromkeys(w.worker for o in loads.values() for w in o.workers if w.rate > RATE_TOL)
    compute = sum(scenario.worker_map[w].price for w in used)
    flows, comm = _communication(scenario, plan, variant, loads, violations)
    acc = scenario.accuracy_of(variant)
    if acc is None:
        violations.append(
            Violation("accuracy_unknown", f"the accuracy table has no entry for variants {variant}")
        )
    elif acc < target - 1e-9:
        violations.append(
            Violation("accuracy_below_target", f"accuracy {acc:g} is below the target {target:g}")
        )
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


# --------------------------------------------------------------------------- names


def _check_model_assignment(scenario: Scenario, plan: Plan, out: list[Violation]) -> None:
    """Every operator and variant ``model_assignment`` names exists."""
    ops = scenario.operator_map
    for op, var in plan.model_assignment.items():
        if op not in ops:
            out.append(
                Violation("unknown_operator", f"model_assignment names unknown operator {op!r}")
            )
        elif var not in ops[op].variants:
            out.append(
                Violation(
                    "unknown_variant",
                    f"model_assignment: {var!r} is not a variant of {op!r} "
                    f"(variants: {', '.join(ops[op].variants)})",
                )
            )


def _variants(scenario: Scenario, plan: Plan, out: list[Violation]) -> dict[str, str]:
    """The variant of every operator (its only one when the plan names none)."""
    variant: dict[str, str] = {}
    for o in scenario.operators:
        v = plan.model_assignment.get(o.name)
        if v is None:
            if len(o.variants) > 1:
                out.append(
                    Violation("missing_variant", f"model_assignment has no variant for {o.name!r}")
                )
            v = o.variants[0]
        variant[o.name] = v
    return variant


def _check_worker_assignment(scenario: Scenario, plan: Plan, out: list[Violation]) -> None:
    """Known operators and workers, and no worker hosting two operators."""
    ops, workers = scenario.operator_map, scenario.worker_map
    for op in plan.worker_assignment:
        if op not in ops:
            out.append(
                Violation("unknown_operator", f"worker_assignment names unknown operator {op!r}")
            )
    seen: dict[str, str] = {}
    for op, shares in plan.worker_assignment.items():
        for s in shares:
            if s.worker not in workers:
                out.append(
                    Violation(
                        "unknown_worker", f"worker_assignment.{op}: unknown worker {s.worker!r}"
                    )
                )
            elif s.worker in seen:
                out.append(
                    Violation(
                        "worker_reused",
                        f"worker {s.worker!r} is assigned to {seen[s.worker]!r} and {op!r} "
                        "(a worker hosts at most one operator)",
                    )
                )
            else:
                seen[s.worker] = op


# --------------------------------------------------------------------------- rates


def _operator_load(
    scenario: Scenario, plan: Plan, op: str, var: str, d: float, out: list[Violation]
) -> OperatorLoad:
    """What each of ``op``'s workers serves of its demand ``d`` (explicit rates, then the fill
    order), checked against capacity."""
    workers = scenario.worker_map
    shares = [s for s in plan.worker_assignment.get(op, []) if s.worker in workers]
    caps = {s.worker: scenario.capacity(op, var, s.worker, s.batch) for s in shares}
    batch = {s.worker: s.batch for s in shares}
    for i, s in enumerate(plan.worker_assignment.get(op, [])):
        if s.worker not in workers or var not in scenario.operator_map[op].variants:
            continue
        prof = scenario.profile(op, var, s.worker)
        if prof is None:
            out.append(
                Violation(
                    "no_profile", f"{op!r} variant {var!r} has no profile on worker {s.worker!r}"
                )
            )
        elif s.batch not in prof.batch_sizes:
            out.append(
                Violation(
                    "unknown_batch",
                    f"worker_assignment.{op}[{i}].batch: {s.worker!r} has no profile of {op!r} "
                    f"variant {var!r} at batch size {s.batch} (profiled sizes: "
                    f"{', '.join(map(str, prof.batch_sizes))})",
                )
            )
    served = _served(op, var, d, shares, caps, out)
    total_served = sum(served.values())
    capacity = sum(caps.values())
    if total_served < d * (1 - RATE_TOL) - 1e-9:
        out.append(
            Violation(
                "capacity_short",
                f"{op!r} ({var}) needs {d:.4g} req/s but its workers serve {total_served:.4g} "
                f"(capacity {capacity:.4g} req/s)",
            )
        )
    wl = [
        WorkerLoad(
            worker=w,
            rate=r,
            capacity=caps[w],
            utilization=(r / caps[w]) if caps[w] > 0 else (math.inf if r > 0 else 0.0),
            price=workers[w].price,
            tier=scenario.worker_tier[w],
            batch=batch[w],
        )
        for w, r in served.items()
    ]
    return OperatorLoad(
        operator=op,
        variant=var,
        demand=d,
        capacity=capacity,
        served=total_served,
        utilization=(d / capacity) if capacity > 0 else (math.inf if d > 0 else 0.0),
        workers=wl,
    )


def _served(
    op: str,
    var: str,
    d: float,
    shares: list[WorkerShare],
    caps: Mapping[str, float],
    out: list[Violation],
) -> dict[str, float]:
    """worker -> req/s: explicit rates as given (flagged above capacity); workers without one
    take ``min(capacity, remaining demand)`` in list order."""
    explicit = sum(s.rate for s in shares if s.rate is not None)
    remaining = max(0.0, d - explicit)
    served: dict[str, float] = {}
    for s in shares:
        if s.rate is not None:
            r = s.rate
            if r > caps[s.worker] * (1 + RATE_TOL) + 1e-9:
                out.append(
                    Violation(
                        "capacity_exceeded",
                        f"{op!r} on {s.worker!r}: rate {r:.4g} req/s exceeds capacity "
                        f"{caps[s.worker]:.4g} req/s of {var!r}",
                    )
                )
        else:
            r = min(caps[s.worker], remaining)
            remaining -= r
        served[s.worker] = served.get(s.worker, 0.0) + r
    return served


# --------------------------------------------------------------------------- communication


def _communication(
    scenario: Scenario,
    plan: Plan,
    variant: Mapping[str, str],
    loads: dict[str, OperatorLoad],
    out: list[Violation],
) -> tuple[list[Flow], float]:
    """The flows on every edge (the plan's routing, or proportional mixing without one) and
    their $/hour; forbidden (backward) flows are violations and cost nothing."""
    explicit_edges: dict[tuple[str, str], list[Flow]] = {}
    for f in plan.routing or []:
        explicit_edges.setdefault(f.edge, []).append(f)
    edge_keys = {(e.source, e.target) for e in scenario.edges}
    for key in explicit_edges:
        if key not in edge_keys:
            out.append(
                Violation(
                    "unknown_flow_endpoint",
                    f"routing names edge {list(key)} that is not in the DAG",
                )
            )
    flows: list[Flow] = []
    comm = 0.0
    for e in scenario.edges:
        kb = e.message_kb_for(variant.get(e.source, "default"))
        for f in _edge_flows(scenario, e, loads, explicit_edges, out):
            c = comm_cost_of_flow(scenario, f.rate, kb, f.sender, f.receiver)
            if math.isinf(c):
                out.append(
                    Violation(
                        "backward_traffic",
                        f"edge {e.source}->{e.target}: {f.rate:.4g} req/s from {f.sender!r} "
                        f"(tier {scenario.endpoint_tier(f.sender)}) back to {f.receiver!r} (tier "
                        f"{scenario.worker_tier[f.receiver]}); backward traffic is forbidden",
                    )
                )
                continue
            comm += c
            flows.append(f)
    return flows, comm


def _edge_flows(
    scenario: Scenario,
    e: Edge,
    loads: dict[str, OperatorLoad],
    explicit_edges: Mapping[tuple[str, str], list[Flow]],
    out: list[Violation],
) -> list[Flow]:
    """The positive flows on ``e`` between known endpoints: the plan's routing (checked), or
    ``rate(v) * share_u(a) * share_v(b)`` for every pair."""
    u, v = e.source, e.target
    srcs, workers = scenario.source_map, scenario.worker_map
    # shares of u's traffic: a source sends from itself
    if u in srcs:
        u_share = {u: 1.0}
    else:
        lu = loads[u]
        u_share = {w.worker: (w.rate / lu.served) for w in lu.workers if lu.served > 0}
    lv = loads[v]
    if (u, v) in explicit_edges:
        edge_flows = explicit_edges[(u, v)]
        _check_routing(scenario, e.ratio, u, v, loads, edge_flows, out)
    else:
        edge_flows = [
            Flow((u, v), a, w.worker, lv.served * sa * (w.rate / lv.served))
            for a, sa in u_share.items()
            for w in lv.workers
            if lv.served > 0 and sa > 0 and w.rate > 0
        ]
    return [
        f
        for f in edge_flows
        if f.receiver in workers and (f.sender in workers or f.sender in srcs) and f.rate > 0
    ]


def _check_routing(
    scenario: Scenario,
    ratio: float,
    u: str,
    v: str,
    loads: dict[str, OperatorLoad],
    flows: list[Flow],
    out: list[Violation],
) -> None:
    """Flows into each v worker must equal what it serves; out of each u worker, at most
    what it serves times the edge ratio."""
    v_rates = {w.worker: w.rate for w in loads[v].workers}
    if u in scenario.source_map:
        u_out = {u: math.inf}
    else:
        u_out = {w.worker: w.rate * ratio for w in loads[u].workers}
    into: dict[str, float] = {}
    sent: dict[str, float] = {}
    for f in flows:
        if f.sender not in u_out:
            out.append(
                Violation(
                    "unknown_flow_endpoint",
                    f"routing on {u}->{v}: sender {f.sender!r} does not serve {u!r}",
                )
            )
        if f.receiver not in v_rates:
            out.append(
                Violation(
                    "unknown_flow_endpoint",
                    f"routing on {u}->{v}: receiver {f.receiver!r} does not serve {v!r}",
                )
            )
        into[f.receiver] = into.get(f.receiver, 0.0) + f.rate
        sent[f.sender] = sent.get(f.sender, 0.0) + f.rate

    def tol(x: float) -> float:
        return RATE_TOL * max(1.0, x) + 1e-6

    for w, r in v_rates.items():
        if abs(into.get(w, 0.0) - r) > tol(r):
            out.append(
                Violation(
                    "routing_mismatch",
                    f"routing on {u}->{v}: {w!r} receives {into.get(w, 0.0):.6g} req/s but "
                    f"serves {r:.6g}",
                )
            )
    for w, r in sent.items():
        cap = u_out.get(w, 0.0)
        if r > cap + tol(cap if math.isfinite(cap) else r):
            out.append(
                Violation(
                    "routing_mismatch",
                    f"routing on {u}->{v}: {w!r} sends {r:.6g} req/s but produces only {cap:.6g}",
                )
            )
