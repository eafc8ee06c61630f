"""One interface for every planner: :class:`Planner` returns a :class:`PlanResult`.

A planner is configured on its constructor and asked for a plan with
``plan(scenario, rates=None, accuracy=None)``. The registry builds planners by name::

    from jbrl.planning import get_planner

    result = get_planner("milp", max_util=0.8, time_limit=10).plan(scenario, rates={"cam": 30})
    result.plan        # a jbrl.planning.plan.Plan with explicit rates (and routing for the MILP)
    result.to_dict()   # the plan JSON of ARCHITECTURE.md plus solver, status, costs, ...

Names: ``milp`` (exact, HiGHS), ``jellybean`` (the paper's heuristic), ``cloud-only`` (every
operator on the top tier), ``most-accurate`` (the most accurate variants, placed optimally).
Other packages may add planners with :func:`register_planner`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from jbrl.errors import InputError
from jbrl.jsonable import jsonable
from jbrl.planning.cost import CostReport, evaluate_plan
from jbrl.planning.plan import Plan
from jbrl.registry import resolve_factory
from jbrl.scenario.model import Scenario

Status = Literal["optimal", "feasible", "infeasible"]


@dataclass
class PlanResult:
    """What a planner found: the plan, its costs (from :func:`jbrl.planning.cost.evaluate_plan`) and how.

    ``reason`` is set when ``status == "infeasible"``: a dict with a ``message`` and numbers
    (``best_reachable_accuracy``, ``max_rate_scale``, ``max_rates`` ...). ``extra`` holds
    solver-specific facts (MILP objective, model size, aggregation) that go into ``to_dict()``
    under ``"solver_info"``.
    """

    plan: Plan
    solver: str
    status: Status
    compute_cost: float | None = None
    communication_cost: float | None = None
    total_cost: float | None = None
    accuracy: float | None = None
    solve_time_s: float = 0.0
    gap: float | None = None
    reason: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.status != "infeasible"

    def summary(self) -> dict[str, Any]:
        """The planner keys of the output JSON (everything but the plan itself)."""
        out: dict[str, Any] = {
            "solver": self.solver,
            "status": self.status,
            "compute_cost": self.compute_cost,
            "communication_cost": self.communication_cost,
            "total_cost": self.total_cost,
            "accuracy": self.accuracy,
            "solve_time_s": self.solve_time_s,
            "gap": self.gap,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.extra:
            out["solver_info"] = self.extra
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plan JSON (model_assignment, worker_assignment with rates, routing) plus the keys."""
        d = self.summary()
        plan_d = self.plan.to_dict()
        for key in ("model_assignment", "worker_assignment", "routing"):
            d[key] = plan_d.get(key, [] if key == "routing" else {})
        return jsonable(d)

    @classmethod
    def infeasible(
        cls, solver: str, reason: dict[str, Any], solve_time_s: float = 0.0, **extra: Any
    ) -> PlanResult:
        return cls(
            plan=Plan({}, {}, [], {}),
            solver=solver,
            status="infeasible",
            solve_time_s=solve_time_s,
            reason=reason,
            extra=dict(extra),
        )


@runtime_checkable
class Planner(Protocol):
    """Anything that turns a scenario (at given source rates and accuracy target) into a plan."""

    name: str

    def plan(
        self,
        scenario: Scenario,
        rates: Mapping[str, float] | None = None,
        accuracy: float | None = None,
    ) -> PlanResult: ...


# --------------------------------------------------------------------------- helpers


def full_rates(scenario: Scenario, rates: Mapping[str, float] | None) -> dict[str, float]:
    """Nominal source rates overridden by ``rates`` (a partial mapping keeps the others)."""
    out = scenario.nominal_rates()
    if rates:
        for name, value in rates.items():
            if name not in out:
                raise InputError(
                    f"unknown source (sources: {', '.join(out)})", field="rates", value=name
                )
            v = float(value)
            if not math.isfinite(v) or v < 0:
                raise InputError(
                    "must be a finite rate >= 0 (req/s)", field=f"rates.{name}", value=v
                )
            out[name] = v
    return out


def target_accuracy(scenario: Scenario, accuracy: float | None) -> float:
    return scenario.slo.min_accuracy if accuracy is None else float(accuracy)


def finish(
    scenario: Scenario,
    plan: Plan,
    solver: str,
    status: Status,
    rates: Mapping[str, float],
    accuracy_target: float,
    solve_time_s: float,
    gap: float | None,
    extra: dict[str, Any] | None = None,
) -> tuple[PlanResult, CostReport]:
    """Cost ``plan`` with the cost model and wrap it in a :class:`PlanResult`."""
    report = evaluate_plan(scenario, plan, rates, accuracy_target)
    info = dict(extra or {})
    if report.violations:
        info["violations"] = [f"{v.kind}: {v.message}" for v in report.violations]
    result = PlanResult(
        plan=plan,
        solver=solver,
        status=status,
        compute_cost=report.compute_cost,
        communication_cost=report.communication_cost,
        total_cost=report.total_cost,
        accuracy=report.accuracy,
        solve_time_s=solve_time_s,
        gap=gap,
        extra=info,
    )
    # The plan carries the planner keys too, so a written plan file says where it came from.
    meta = {k: v for k, v in result.summary().items() if k != "solver_info"}
    result.plan = Plan(plan.model_assignment, plan.worker_assignment, plan.routing, meta)
    return result, report


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, str | Callable[..., Planner]] = {
    "milp": "jbrl.planning.milp:MilpPlanner",
    "jellybean": "jbrl.planning.jellybean:JellyBeanPlanner",
    "cloud-only": "jbrl.planning.baselines:CloudOnlyPlanner",
    "most-accurate": "jbrl.planning.baselines:MostAccuratePlanner",
}


def register_planner(name: str, factory: str | Callable[..., Planner]) -> None:
    """Add a planner: a callable returning a Planner, or ``"module:attribute"`` (lazy)."""
    _REGISTRY[name] = factory


def planner_names() -> list[str]:
    return list(_REGISTRY)


def get_planner(name: str, **options: Any) -> Planner:
    """Build the planner registered as ``name`` with constructor ``options``."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise InputError(
            f"unknown planner (planners: {', '.join(_REGISTRY)})", field="solver", value=name
        )
    try:
        return resolve_factory(factory)(**options)
    except TypeError as exc:
        raise InputError(f"bad option for planner {name!r}: {exc}", field="options") from None
