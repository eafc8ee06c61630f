"""The controller's safety net: check a plan before it runs, and the MILP plan to fall back on.

:func:`check_plan` accepts a plan only when (all through :func:`jbrl.planning.cost.evaluate_plan`):

* it names known operators, variants and workers, every operator has a variant, and the variant
  combination meets the accuracy target;
* each worker hosts at most one operator, every placed variant has a profile on its worker, and
  no traffic flows backward where the scenario forbids it;
* every worker can carry its share of its operator's demand at the **current** load times
  ``1 + headroom``. A plan's per-worker rates are routing weights (backends keep each worker's
  share of the traffic, as the simulators do): they were chosen for whatever load the policy
  assumed, so they are rescaled to the current load rather than compared as given;
* where the scenario has a latency bound, the plan so rescaled is **predicted** to meet the
  SLO's attainment target at that load (:func:`jbrl.planning.slo_check.check_latency`, the
  shared latency model): capacity alone lets a plan run workers at 100 % and miss its SLO
  (``latency_at_risk``);
* no worker the backend reports as crashed is used.

:class:`FallbackPlanner` is the exact MILP, restricted to the workers that are up, with a small
penalty on reloading models so a fallback does not reshuffle working placements: SLO-aware at
the current load times ``1 + headroom`` where the scenario has a latency bound (then at the
current load), capacity-only with ``max_util = 1 / (1 + headroom)`` where it has none. If even
that is infeasible (more load than the live workers can carry), it plans for the largest load
they sustain (within the SLO where there is one; capacity only when no load meets it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jbrl.control.config import ControllerConfig
from jbrl.planning.cost import RATE_TOL, evaluate_plan
from jbrl.planning.coverage import rescale_plan, scaled
from jbrl.planning.milp import MilpPlanner
from jbrl.planning.plan import Plan
from jbrl.planning.shield import SloShield
from jbrl.planning.slo_check import check_latency
from jbrl.scenario.model import Scenario

# Rate-dependent checks: replaced by the per-worker coverage check at the current load.
_RATE_KINDS = {"capacity_short", "capacity_exceeded"}


@dataclass(frozen=True)
class Problem:
    """Why a plan was rejected: a :mod:`jbrl.planning.cost` violation kind (or ``worker_down``)."""

    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def check_plan(
    scenario: Scenario,
    plan: Plan,
    load: Mapping[str, float],
    headroom: float = 0.1,
    accuracy: float | None = None,
    down: Iterable[str] = (),
) -> list[Problem]:
    """Every reason ``plan`` must not run at source rates ``load`` (empty: accept it)."""
    problems: list[Problem] = []
    as_given = evaluate_plan(scenario, plan, load, accuracy)
    for v in as_given.violations:
        if v.kind not in _RATE_KINDS:
            problems.append(Problem(v.kind, v.message))
    if as_given.invalid:
        return problems
    need = scaled(load, 1.0 + headroom)
    problems.extend(_coverage(scenario, plan, need, headroom, accuracy))
    if not problems:
        problems.extend(_latency(scenario, plan, need, headroom))
    down_set = set(down)
    for op, shares in plan.worker_assignment.items():
        for s in shares:
            if s.worker in down_set:
                problems.append(
                    Problem("worker_down", f"{op!r} is placed on {s.worker!r}, which is down")
                )
    return problems


def _coverage(
    scenario: Scenario,
    plan: Plan,
    need: Mapping[str, float],
    headroom: float,
    accuracy: float | None,
) -> list[Problem]:
    """Each worker's share of its operator's demand at ``need`` must fit its capacity.

    Backends route by the plan's weights (explicit rates, or fill order at the design load), so
    a worker keeps its share of the traffic whatever the load: the plan's rates are weights,
    and what counts is whether each worker can carry its share of the current load.
    """
    out: list[Problem] = []
    demand = scenario.demand(need)
    rep = evaluate_plan(scenario, plan, need, accuracy)
    label = f"at the current load x {1 + headroom:g} (headroom)"
    for op, ol in rep.operators.items():
        d = demand[op]
        if d <= 0:
            continue
        if not ol.workers:
            out.append(
                Problem("capacity_short", f"{op!r} needs {d:.4g} req/s {label} but has no worker")
            )
            continue
        total = sum(w.rate for w in ol.workers)
        caps = sum(w.capacity for w in ol.workers)
        for w in ol.workers:
            share = w.rate / total if total > 0 else (w.capacity / caps if caps > 0 else 0.0)
            carry = share * d
            if carry > w.capacity * (1 + RATE_TOL) + 1e-9:
                out.append(
                    Problem(
                        "capacity_short",
                        f"{op!r} on {w.worker!r}: its share of the traffic is {carry:.4g} req/s "
                        f"{label}, above its capacity {w.capacity:.4g} req/s "
                        f"(operator capacity {caps:.4g}, demand {d:.4g})",
                    )
                )
    return out


def _latency(
    scenario: Scenario, plan: Plan, need: Mapping[str, float], headroom: float
) -> list[Problem]:
    """Where the scenario has a latency bound: the plan, rescaled to ``need``, must be
    predicted to meet the SLO's attainment target."""
    if scenario.slo.bound_s is None:
        return []
    at = rescale_plan(scenario, plan, need)
    if at is None:
        return []  # (an operator with demand and no worker: _coverage names it)
    check = check_latency(scenario, at, need)
    if check.violation is None:
        return []
    return [
        Problem(
            "latency_at_risk", f"at the current load x {1 + headroom:g}: {check.violation.message}"
        )
    ]


def predicted_attainment(scenario: Scenario, plan: Plan, load: Mapping[str, float]) -> float | None:
    """The plan's predicted fraction of requests within the latency bound at ``load`` (its
    routing weights kept); None without a bound or a plan that cannot serve the load."""
    if scenario.slo.bound_s is None or not any(v > 0 for v in load.values()):
        return None
    at = rescale_plan(scenario, plan, load)
    if at is None:
        return None
    return check_latency(scenario, at, load).attainment


def controller_shield(scenario: Scenario, config: ControllerConfig) -> SloShield | None:
    """The controller's SLO shield (None when ``config.shield`` is off): plans are checked at
    the observed load x ``1 + headroom``, the load :func:`check_plan` checks them at, so a plan
    the shield passes or substitutes also passes the latency check."""
    if not config.shield:
        return None
    return SloShield(scenario, 1.0 + config.headroom, config.fallback_time_limit_s)


def shielded(
    shield: SloShield | None, plan: Plan, load: Mapping[str, float], down: Iterable[str] = ()
) -> tuple[Plan, dict[str, Any] | None]:
    """(the plan to check, the shield's verdict as facts) for a policy's ``plan`` at ``load``:
    the shield's substitute when it intervened; ``plan`` and None without a shield."""
    if shield is None:
        return plan, None
    verdict = shield.check(plan, load, down)
    return verdict.plan, verdict.info()


class FallbackPlanner:
    """The MILP plan at the current load with headroom, on the workers that are up."""

    def __init__(
        self,
        scenario: Scenario,
        headroom: float = 0.1,
        accuracy: float | None = None,
        time_limit: float = 10.0,
        reconfig_penalty: float = 0.01,
    ) -> None:
        self.scenario = scenario
        self.headroom = headroom
        self.accuracy = accuracy
        self.time_limit = time_limit
        self.reconfig_penalty = reconfig_penalty
        self._cache: dict[tuple[object, ...], Plan] = {}

    def plan(
        self,
        load: Mapping[str, float],
        down: Iterable[str] = (),
        current: Plan | None = None,
    ) -> tuple[Plan | None, str]:
        """(plan, how) — ``how`` says which attempt produced it; (None, reason) if none did."""
        down_set = frozenset(down)
        workers = [w.name for w in self.scenario.workers if w.name not in down_set]
        if not workers:
            return None, "every worker is down"
        key = (
            tuple(sorted((k, round(v, 3)) for k, v in load.items())),
            down_set,
            None if current is None else current.to_json(None),
        )
        if key in self._cache:
            return self._cache[key], "milp (cached)"

        def milp(max_util: float | None) -> MilpPlanner:
            """The MILP on the live workers, penalising model reloads from ``current``
            (SLO-aware without ``max_util``)."""
            return MilpPlanner(
                max_util=max_util,
                time_limit=self.time_limit,
                workers=workers,
                current_plan=current,
                reconfig_penalty=self.reconfig_penalty if current is not None else 0.0,
            )

        for planner, at, how in self._attempts(milp, load):
            result = planner.plan(self.scenario, at, self.accuracy)
            if result.feasible:
                self._cache[key] = result.plan
                if len(self._cache) > 64:
                    self._cache.pop(next(iter(self._cache)))
                return result.plan, how
        return self._overloaded(milp, load, workers)

    def _attempts(
        self, milp: Callable[[float | None], MilpPlanner], load: Mapping[str, float]
    ) -> list[tuple[MilpPlanner, dict[str, float], str]]:
        """(planner, rates, how) to try in turn: with headroom, then without."""
        if self.scenario.slo.bound_s is not None:
            return [
                (milp(None), scaled(load, 1.0 + self.headroom), "milp (SLO-aware)"),
                (milp(None), dict(load), "milp (SLO-aware, no headroom)"),
            ]
        return [
            (milp(1.0 / (1.0 + self.headroom)), dict(load), "milp"),
            (milp(1.0), dict(load), "milp (no headroom)"),
        ]

    def _overloaded(
        self,
        milp: Callable[[float | None], MilpPlanner],
        load: Mapping[str, float],
        workers: list[str],
    ) -> tuple[Plan | None, str]:
        """More load than the live workers carry: plan for the most they sustain (within the
        SLO where there is one; capacity-only when no load meets it)."""
        target = self.scenario.slo.min_accuracy if self.accuracy is None else self.accuracy
        aware = self.scenario.slo.bound_s is not None
        tries: list[tuple[float | None, str]] = [(None, " within the SLO")] if aware else []
        for util, label in [*tries, (1.0, "")]:
            probe = MilpPlanner(
                max_util=util, time_limit=self.time_limit, workers=workers, mip_rel_gap=1e-4
            )
            mr = probe.max_rate(self.scenario, target, dict(load))
            if mr.status == "infeasible" or not mr.scale > 0:
                continue
            result = milp(util).plan(self.scenario, scaled(load, mr.scale * 0.999), self.accuracy)
            if result.feasible:
                return result.plan, f"milp at {mr.scale:.3g}x the load{label} (overloaded)"
        return None, "no plan meets the accuracy target on the live workers"
