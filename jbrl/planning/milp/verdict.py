"""A solved MILP and the end-to-end predictor's verdict on its plan.

:class:`Solved` is what one HiGHS run of the planner leaves (the model, status, plan, objective);
:func:`judge` asks the latency predictor (:func:`jbrl.planning.latency.predict_plan`) whether
the plan meets the scenario's attainment target, which the calibration
(:mod:`jbrl.planning.milp.calibrate`) needs; :func:`latency_facts` and :func:`latency_reason`
are what a plan result and an infeasibility reason report about latency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import highspy

from jbrl.planning.base import Status
from jbrl.planning.latency import predict_plan
from jbrl.planning.milp.calibrate import Attempt, Search
from jbrl.planning.milp.combos import Combo
from jbrl.planning.milp.model import BuiltModel
from jbrl.planning.milp.slo import SloTarget
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario

ATTAINMENT_TOL = 1e-6
"""A prediction this close below the target still meets it (grid rounding)."""


@dataclass
class Solved:
    """One HiGHS run: model, status (None: no plan), gap and, with a plan, what it chose."""

    h: highspy.Highs
    built: BuiltModel
    status: Status | None
    gap: float | None
    slo: SloTarget | None
    plan: Plan | None = None
    changed: int = 0
    objective: float = math.inf
    scale: float = 0.0
    combo: Combo = field(default_factory=lambda: ({}, 0.0))
    predicted: dict[str, Any] | None = None


def has_predictor() -> bool:
    """Whether an end-to-end latency predictor is available to calibrate against."""
    return True


def predict(
    scenario: Scenario, plan: Plan, rates: Mapping[str, float], family: str
) -> dict[str, Any] | None:
    """The predictor's figures for ``plan`` at ``rates`` (:func:`jbrl.planning.latency.
    predict_plan`): ``attainment`` (P(end-to-end <= bound)), ``latency_ms`` at the SLO
    percentile, ``stable``, ``mean_ms``."""
    pl = predict_plan(scenario, plan, rates, family=family)
    return {
        "attainment": pl.attainment,
        "latency_ms": pl.latency_s * 1000.0 if math.isfinite(pl.latency_s) else None,
        "mean_ms": pl.mean_s * 1000.0 if math.isfinite(pl.mean_s) else None,
        "stable": pl.stable,
    }


def judge(
    scenario: Scenario,
    solved: Solved,
    rates: Mapping[str, float],
    theta: float,
    objective: float,
    family: str,
) -> Attempt[Solved]:
    """The attempt of one rung: confirmed when the predictor says the plan meets the target
    (without a predictor: when the per-stage model is the safe union bound, ``theta <= 1``)."""
    assert solved.plan is not None
    figures = predict(scenario, solved.plan, rates, family)
    solved.predicted = figures
    if figures is None:
        return Attempt(theta, solved, objective, theta <= 1.0)
    att = figures.get("attainment")
    ok = att is not None and att >= scenario.slo.attainment - ATTAINMENT_TOL
    return Attempt(theta, solved, objective, ok, att)


def latency_facts(scenario: Scenario, solved: Solved, search: Search[Solved]) -> dict[str, Any]:
    """What a plan result says about latency: the bound and target, the per-stage model it was
    solved with (looseness, stage tail, each operator's budget), the prediction, the rungs."""
    slo = solved.slo
    bound = scenario.slo.bound_s
    assert bound is not None
    out: dict[str, Any] = {
        "bound_ms": bound * 1000.0,
        "attainment_target": scenario.slo.attainment,
        # The floor (capacity only, no per-stage model) has no theta, stage tail or budgets.
        "theta": None if slo is None else slo.theta,
        "max_util": next((a.util for a in search.attempts if a.solution is solved), None),
        "stage_tail": None if slo is None else slo.tail,
        "stage_budgets_ms": stage_budgets_ms(solved),
        "predicted": solved.predicted,
        "rungs": [
            {
                "theta": a.theta if math.isfinite(a.theta) else None,
                "max_util": a.util,
                "objective": a.objective,
                "confirmed": a.confirmed,
                "predicted_attainment": a.predicted,
            }
            for a in search.attempts
        ],  # fmt: skip
    }
    return out


def stage_budgets_ms(solved: Solved) -> dict[str, float]:
    """Each operator's chosen budget level (ms)."""
    stages = solved.built.layout_stages
    if stages is None:
        return {}
    values = solved.h.getSolution().col_value
    out: dict[str, float] = {}
    for o, cols in solved.built.w.items():
        k = max(range(len(cols)), key=lambda i: values[cols[i]])
        out[o] = stages.levels[o][k] * 1000.0
    return out


def latency_reason(
    scenario: Scenario, rates: Mapping[str, float], target: float, search: Search[Solved]
) -> dict[str, Any]:
    """Why no plan meets the latency bound, with numbers: no rung has a plan (the bound is
    below what the workers' service times and the network allow, or capacity runs out), or the
    predictor rejected every plan (the best prediction is given)."""
    bound = scenario.slo.latency_ms
    best = search.best_rejected()
    if best is None:
        text = (
            f"no plan meets the latency bound {bound:g} ms at {scenario.slo.attainment:.4g} "
            "attainment even with the loosest stage model: the slowest path's service and "
            "transfer times leave no room, or the load exceeds what the workers serve within it"
        )
    else:
        text = (
            f"no plan is predicted to meet the latency bound {bound:g} ms at "
            f"{scenario.slo.attainment:.4g} attainment: the best plan found is predicted at "
            f"{(best.predicted or 0.0):.4g}"
        )
    return {
        "message": text,
        "proven": best is None,
        "latency_bound_ms": bound,
        "attainment_target": scenario.slo.attainment,
        "best_predicted_attainment": None if best is None else best.predicted,
        "accuracy_target": target,
        "requested_rates": dict(rates),
        "rungs": [
            {
                "theta": a.theta if math.isfinite(a.theta) else None,
                "feasible": a.solution is not None,
            }
            for a in search.attempts
        ],
    }
