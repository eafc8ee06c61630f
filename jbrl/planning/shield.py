"""The SLO shield (issue 13, item 2): a plan is checked against the observed load before it runs.

Before a plan is applied, :meth:`SloShield.check` asks the shared model whether it serves the
observed source rates x ``margin`` (:func:`jbrl.planning.coverage.coverage`: every worker within
its capacity with the plan's routing weights and, where the scenario has a latency bound, the
attainment predicted by :func:`jbrl.planning.latency.predict_plan` at the SLO's target - the same
prediction as the controller's ``latency_at_risk`` check). A plan that passes runs unchanged.
A plan predicted to miss is replaced, at once, by the cheapest plan that meets the target at
load x margin and **only adds capacity**: the SLO-aware MILP with every worker of the wanted plan
kept on its operator and variant (``MilpPlanner(current_plan=wanted, keep_current=True)``), so
the substitute loads models only on the workers it adds. Where no such scale-up meets the target
(the wanted combination is too slow, or the wanted plan is not a plan of this scenario), the
shield takes the cheapest plan at load x margin (tie-broken toward the wanted plan's workers) and
says so; where no plan meets it at all, the wanted plan runs and the verdict says why.

Deterministic (HiGHS with a fixed seed; memoized on the wanted plan's (worker, operator, variant)
set and the target rounded *up* to ``grid`` x the nominal rates) and fast on the common path: a
plan that passes costs one memoized prediction. Every verdict carries its wall time; the shield
keeps counts (decisions, interventions, unresolved misses) and the mean / max time per decision.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from jbrl.errors import InputError
from jbrl.planning.coverage import (
    TIE_PENALTY,
    Coverage,
    coverage,
    plan_signature,
    scaled,
    variants_of,
    with_rates,
)
from jbrl.planning.milp import MilpPlanner
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario

DEFAULT_MARGIN = 1.1
"""The shield checks plans at the observed load x this margin (as the controller's headroom)."""
_MEMO_LIMIT = 4096


@dataclass(frozen=True)
class ShieldVerdict:
    """What the shield did with one plan.

    ``plan`` is the plan to apply (the wanted one unless ``intervened``); ``reason`` says why it
    intervened or could not (empty when the wanted plan passed); ``scale_up`` is True when the
    substitute keeps every worker of the wanted plan; ``added_workers`` counts the workers the
    substitute deploys beyond it; ``wanted_cost`` / ``cost`` are $/hour at load x margin;
    ``attainment_wanted`` / ``attainment`` the predicted attainment there (None without a bound).
    """

    plan: Plan
    intervened: bool
    reason: str = ""
    missed: bool = False
    """The wanted plan misses and no plan meets the target: it runs anyway."""
    scale_up: bool = True
    added_workers: int = 0
    wanted_cost: float = 0.0
    cost: float = 0.0
    attainment_wanted: float | None = None
    attainment: float | None = None
    seconds: float = 0.0

    def info(self) -> dict[str, Any]:
        """The verdict as JSON-ready facts (``info["shield"]``, decision logs)."""
        return {
            "intervened": self.intervened,
            "reason": self.reason,
            "missed": self.missed,
            "scale_up": self.scale_up,
            "added_workers": self.added_workers,
            "wanted_cost": _finite(self.wanted_cost),
            "cost": _finite(self.cost),
            "attainment_wanted": self.attainment_wanted,
            "attainment": self.attainment,
            "seconds": self.seconds,
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass
class ShieldStats:
    """Counts of one run (or one controller's life)."""

    decisions: int = 0
    interventions: int = 0
    scale_ups: int = 0
    """Interventions whose substitute kept every worker of the wanted plan."""
    missed: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def add(self, verdict: ShieldVerdict) -> None:
        self.decisions += 1
        self.interventions += int(verdict.intervened)
        self.scale_ups += int(verdict.intervened and verdict.scale_up)
        self.missed += int(verdict.missed)
        self.total_s += verdict.seconds
        self.max_s = max(self.max_s, verdict.seconds)

    def summary(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "interventions": self.interventions,
            "scale_ups": self.scale_ups,
            "missed": self.missed,
            "mean_ms": 1e3 * self.total_s / self.decisions if self.decisions else 0.0,
            "max_ms": 1e3 * self.max_s,
        }


class SloShield:
    """Checks plans against the observed load x ``margin`` (see the module docstring).

    ``margin`` >= 1; ``time_limit``: seconds per MILP solve of a substitute; ``grid``: the target
    is rounded up to multiples of ``grid`` x each source's nominal rate for memoization (0: exact).
    """

    def __init__(
        self,
        scenario: Scenario,
        margin: float = DEFAULT_MARGIN,
        time_limit: float = 10.0,
        grid: float = 0.01,
    ) -> None:
        if not (math.isfinite(margin) and margin >= 1.0):
            raise InputError("must be a number >= 1", field="shield.margin", value=margin)
        if not time_limit > 0:
            raise InputError("must be > 0 seconds", field="shield.time_limit", value=time_limit)
        if not 0 <= grid < 1:
            raise InputError("must be in [0, 1)", field="shield.grid", value=grid)
        self.scenario = scenario
        self.margin = float(margin)
        self.time_limit = float(time_limit)
        self.grid = float(grid)
        self.stats = ShieldStats()
        self._memo: dict[tuple[Any, ...], tuple[Plan | None, bool, str]] = {}

    def reset(self) -> None:
        """Start a new run's counts (memoized substitutes are kept: they depend on nothing
        else)."""
        self.stats = ShieldStats()

    def target(self, load: Mapping[str, float]) -> dict[str, float]:
        """The rates a plan must serve: ``load`` x margin (over the scenario's sources)."""
        return scaled({s: float(load.get(s, 0.0)) for s in self.scenario.source_map}, self.margin)

    def check(
        self, plan: Plan, load: Mapping[str, float], down: Iterable[str] = ()
    ) -> ShieldVerdict:
        """The plan to apply instead of ``plan`` at observed source rates ``load``; counted.
        ``down``: workers a substitute must not add (the controller's crashed workers)."""
        t0 = time.perf_counter()
        verdict = self._check(plan, load, frozenset(down))
        verdict = _timed(verdict, time.perf_counter() - t0)
        self.stats.add(verdict)
        return verdict

    def _check(self, plan: Plan, load: Mapping[str, float], down: frozenset[str]) -> ShieldVerdict:
        """The verdict (untimed, uncounted): pass, substitute, or a miss nothing fixes."""
        need = self.target(load)
        if not any(v > 0 for v in need.values()):
            return ShieldVerdict(plan, False)
        wanted = coverage(self.scenario, plan, need)
        if wanted.covers:
            return ShieldVerdict(
                plan, False, wanted_cost=wanted.cost, cost=wanted.cost,
                attainment_wanted=wanted.attainment, attainment=wanted.attainment,
            )  # fmt: skip
        why = self._miss(wanted)
        sub, scale_up, how = self._substitute(plan, need, down)
        if sub is None:
            return ShieldVerdict(
                plan, False, f"{why}; {how}: the wanted plan runs", missed=True,
                scale_up=False, wanted_cost=wanted.cost, cost=wanted.cost,
                attainment_wanted=wanted.attainment, attainment=wanted.attainment,
            )  # fmt: skip
        got = coverage(self.scenario, sub, need)
        before = plan_signature(self.scenario, plan)
        added = len(plan_signature(self.scenario, sub) - before)
        delta = got.cost - wanted.cost if math.isfinite(wanted.cost) else got.cost
        return ShieldVerdict(
            sub, True, f"{why}; {how}: {added} worker(s) added, {delta:+.4g} $/h",
            scale_up=scale_up, added_workers=added, wanted_cost=wanted.cost, cost=got.cost,
            attainment_wanted=wanted.attainment, attainment=got.attainment,
        )  # fmt: skip

    def _miss(self, cov: Coverage) -> str:
        """Why the wanted plan fails at load x margin, with numbers."""
        at = f"at the observed load x {self.margin:g}"
        slo = self.scenario.slo
        if cov.attainment is not None:
            return (
                f"predicted {100 * cov.attainment:.2f} % of requests within {slo.latency_ms:g} ms "
                f"{at}, below the target {100 * slo.attainment:g} %"
            )
        if math.isfinite(cov.utilization):
            return f"a worker at {100 * cov.utilization:.0f} % of its capacity {at}"
        return f"the plan cannot serve the load {at} (an operator without a usable worker)"

    def _rounded(self, need: Mapping[str, float]) -> dict[str, float]:
        """``need`` rounded up to the memo grid (never down: the substitute covers ``need``)."""
        if self.grid <= 0:
            return dict(need)
        nominal = self.scenario.nominal_rates()
        out = {}
        for s, v in need.items():
            step = self.grid * nominal.get(s, 0.0)
            out[s] = math.ceil(v / step - 1e-9) * step if step > 0 else v
        return out

    def _substitute(
        self, plan: Plan, need: Mapping[str, float], down: frozenset[str]
    ) -> tuple[Plan | None, bool, str]:
        """(plan, scale-up?, how) meeting the target at ``need`` (plan None: none does)."""
        at = self._rounded(need)
        key = (
            plan_signature(self.scenario, plan),
            tuple(sorted((k, round(v, 9)) for k, v in at.items())),
            down,
        )
        hit = self._memo.get(key)
        if hit is None:
            hit = self._solve(plan, at, need, down)
            if len(self._memo) > _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def _solve(
        self,
        plan: Plan,
        at: Mapping[str, float],
        need: Mapping[str, float],
        down: frozenset[str],
    ) -> tuple[Plan | None, bool, str]:
        """The scale-up MILP (wanted workers kept), else the cheapest plan at ``at`` (on the
        workers not ``down``; the wanted plan's own workers stay either way)."""
        before = plan_signature(self.scenario, plan)
        kept = {w for w, _, _ in before}
        live = [w.name for w in self.scenario.workers if w.name not in down or w.name in kept]
        keep = MilpPlanner(
            workers=live if down else None,
            time_limit=self.time_limit,
            current_plan=plan,
            keep_current=True,
            reconfig_penalty=TIE_PENALTY,
            variants=variants_of(self.scenario, plan) if before else None,
        )
        try:
            res = keep.plan(self.scenario, at)
        except InputError:  # the wanted plan does not fit the scenario's model
            res = None
        if res is not None and res.feasible:
            sub = with_rates(res.plan, at)
            if before <= plan_signature(self.scenario, sub) and self._meets(sub, need):
                return sub, True, "scaled up (SLO-aware MILP, wanted workers kept)"
        up = [w.name for w in self.scenario.workers if w.name not in down]
        fresh = MilpPlanner(
            workers=up if down else None,
            time_limit=self.time_limit,
            current_plan=plan,
            reconfig_penalty=TIE_PENALTY,
        ).plan(self.scenario, at)
        if fresh.feasible:
            sub = with_rates(fresh.plan, at)
            if self._meets(sub, need):
                return sub, False, "no scale-up of the wanted plan meets it; cheapest plan"
        return None, False, "no plan meets the target"

    def _meets(self, plan: Plan, need: Mapping[str, float]) -> bool:
        return coverage(self.scenario, plan, need).covers


def _timed(v: ShieldVerdict, seconds: float) -> ShieldVerdict:
    return replace(v, seconds=seconds)
