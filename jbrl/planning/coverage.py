"""Plan helpers of the policies: coverage of a plan at other rates, its cost there, its
capacity, its signature (which models it deploys where)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from jbrl.planning.cost import INVALID_KINDS, RATE_TOL, evaluate_plan
from jbrl.planning.plan import Flow, Plan, WorkerShare
from jbrl.scenario.model import Scenario

# $/hour added per worker that would load a model, so that among equally cheap MILP plans the
# one closest to the current plan wins (far below any price difference that matters).
TIE_PENALTY = 1e-3
COST_RTOL = 1e-7  # "strictly cheaper" means cheaper by more than this fraction
#: violations that make a plan unusable (not merely short of capacity)
STRUCTURAL_KINDS = INVALID_KINDS | {"worker_reused", "no_profile", "backward_traffic"}


# --------------------------------------------------------------------------- plan helpers


def design_rates(scenario: Scenario, plan: Plan) -> dict[str, float]:
    """The source rates a plan was made for: ``meta["rates"]`` if present, else nominal (the
    simulators resolve fill-order workers at these rates)."""
    meta = plan.meta.get("rates") if isinstance(plan.meta, dict) else None
    if isinstance(meta, Mapping) and meta and set(meta) <= set(scenario.source_map):
        return {**scenario.nominal_rates(), **{k: float(v) for k, v in meta.items()}}
    return scenario.nominal_rates()


def served_rates(scenario: Scenario, plan: Plan) -> dict[str, dict[str, float]]:
    """operator -> {worker: rate it serves at the plan's design rates} (workers with traffic)."""
    report = evaluate_plan(scenario, plan, design_rates(scenario, plan), accuracy_target=-math.inf)
    return {
        op: {w.worker: w.rate for w in load.workers if w.rate > RATE_TOL}
        for op, load in report.operators.items()
    }


def variants_of(scenario: Scenario, plan: Plan) -> dict[str, str]:
    """The variant of every operator (single-variant operators filled in)."""
    return {o.name: plan.model_assignment.get(o.name, o.variants[0]) for o in scenario.operators}


def plan_signature(scenario: Scenario, plan: Plan | None) -> frozenset[tuple[str, str, str]]:
    """The (worker, operator, variant) triples a plan deploys: equal signatures mean switching
    between the plans loads no model."""
    if plan is None:
        return frozenset()
    var = variants_of(scenario, plan)
    return frozenset(
        (s.worker, op, var.get(op, ""))
        for op, shares in plan.worker_assignment.items()
        for s in shares
        if s.rate is None or s.rate > RATE_TOL
    )


def rescale_plan(scenario: Scenario, plan: Plan, rates: Mapping[str, float]) -> Plan | None:
    """``plan`` with every worker's rate (and every routed flow) scaled so that each operator
    serves its demand at ``rates``; routing weights are unchanged. None when an operator with
    demand has no worker."""
    served = served_rates(scenario, plan)
    demand = scenario.demand(rates)
    factor: dict[str, float] = {}
    for o in scenario.operators:
        total = sum(served.get(o.name, {}).values())
        if total <= 0:
            if demand[o.name] > RATE_TOL:
                return None
            factor[o.name] = 0.0
        else:
            factor[o.name] = demand[o.name] / total
    shares = {
        op: [WorkerShare(w, r * factor[op], plan.batch_of(w)) for w, r in ws.items()]
        for op, ws in served.items()
        if ws
    }
    routing = None
    if plan.routing is not None:
        routing = [
            Flow(f.edge, f.sender, f.receiver, f.rate * factor.get(f.edge[1], 0.0))
            for f in plan.routing
        ]
    meta = {"rates": dict(rates)}
    if "solver" in plan.meta:
        meta["solver"] = plan.meta["solver"]
    return Plan(dict(plan.model_assignment), shares, routing, meta)


@dataclass(frozen=True)
class Coverage:
    """Whether a plan serves ``rates`` with its routing weights, and what it costs there."""

    covers: bool
    cost: float  # $/hour at the rates (inf when the plan cannot be rescaled)
    utilization: float  # highest worker utilization at the rates
    attainment: float | None = None
    """Predicted fraction of requests within the latency bound (when it was checked)."""


def coverage(
    scenario: Scenario, plan: Plan, rates: Mapping[str, float], max_util: float | None = None
) -> Coverage:
    """Does ``plan`` cover ``rates``, and at what cost? See the package docstring.

    Covering means no structural violation and every worker within ``max_util`` of its
    capacity; without ``max_util`` (SLO-aware), every worker within its capacity and, where the
    scenario has a latency bound, a predicted attainment (:func:`jbrl.planning.latency.
    predict_plan`) that meets the SLO's target."""
    scaled = rescale_plan(scenario, plan, rates)
    if scaled is None:
        return Coverage(False, math.inf, math.inf)
    report = evaluate_plan(scenario, scaled, rates, accuracy_target=-math.inf)
    util = max(
        (w.utilization for o in report.operators.values() for w in o.workers if w.rate > 0),
        default=0.0,
    )
    structural = [
        v for v in report.violations if v.kind not in ("capacity_exceeded", "capacity_short")
    ]
    cap = 1.0 if max_util is None else max_util
    ok = not structural and util <= cap * (1 + 1e-6) + 1e-9
    if not ok or max_util is not None or scenario.slo.bound_s is None:
        return Coverage(ok, report.total_cost, util)
    att = predicted_attainment(scenario, scaled, rates)
    ok = att >= scenario.slo.attainment - 1e-9
    return Coverage(ok, report.total_cost, util, att)


_PREDICTED: dict[tuple[int, str, tuple[tuple[str, float], ...]], tuple[Scenario, float]] = {}
"""Memo of :func:`predicted_attainment` (the scenario is kept, so its id stays its own)."""


def predicted_attainment(scenario: Scenario, plan: Plan, rates: Mapping[str, float]) -> float:
    """The predicted fraction of requests within the latency bound (memoized: policies ask
    about the same plans at the same rates many times)."""
    from jbrl.planning.latency import predict_plan

    key = (
        id(scenario),
        plan.without_routing().to_json(None) + json.dumps(_routing_key(plan)),
        tuple(sorted((k, round(float(v), 9)) for k, v in rates.items())),
    )
    hit = _PREDICTED.get(key)
    if hit is not None and hit[0] is scenario:
        return hit[1]
    if len(_PREDICTED) > 4096:
        _PREDICTED.clear()
    att = predict_plan(scenario, plan, rates).attainment
    value = 0.0 if att is None else float(att)
    _PREDICTED[key] = (scenario, value)
    return value


def _routing_key(plan: Plan) -> list[tuple[str, str, str, float]]:
    return [(f.edge[1], f.sender, f.receiver, round(f.rate, 9)) for f in plan.routing or []]


def effective_capacity(scenario: Scenario, plan: Plan, rates: Mapping[str, float]) -> float:
    """Requests/s the plan sustains at the source mix of ``rates`` with its routing weights: the
    first worker to reach its capacity bounds it (a request is one arrival of the workflow)."""
    mix = dict(rates)
    if max(mix.values(), default=0.0) <= 0:
        mix = scenario.nominal_rates()
    load = max(mix.values())
    demand = scenario.demand(mix)
    served = served_rates(scenario, plan)
    var = variants_of(scenario, plan)
    cap = math.inf
    for o in scenario.operators:
        per_request = demand[o.name] / load
        if per_request <= 0:
            continue
        ws = served.get(o.name, {})
        total = sum(ws.values())
        if total <= 0:
            return 0.0
        op_cap = min(
            scenario.capacity(o.name, var[o.name], w, plan.batch_of(w)) * total / r
            for w, r in ws.items()
        )
        cap = min(cap, op_cap / per_request)
    return 0.0 if math.isinf(cap) else cap


def scaled(rates: Mapping[str, float], factor: float) -> dict[str, float]:
    return {k: float(v) * factor for k, v in rates.items()}


def with_rates(plan: Plan, rates: Mapping[str, float]) -> Plan:
    """The plan with ``meta["rates"]`` set (the simulators' design rates for it)."""
    return Plan(
        plan.model_assignment,
        plan.worker_assignment,
        plan.routing,
        {**plan.meta, "rates": dict(rates)},
    )


def scenario_fingerprint(scenario: Scenario) -> str:
    """A hash of everything a planner reads (model load times and the demo's settings
    excluded)."""
    data = scenario.model_dump(
        mode="json",
        exclude={"default_load_s": True, "demo": True, "profiles": {"__all__": {"load_s"}}},
    )
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()
