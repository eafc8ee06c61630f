"""Memoized planner calls (see the package docstring, "Memoization")."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from jbrl.planning.base import PlanResult, get_planner
from jbrl.planning.coverage import (
    TIE_PENALTY,
    plan_signature,
    scaled,
    scenario_fingerprint,
    with_rates,
)
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario

_CACHE_LIMIT = 20_000


class PlanCache:
    """Planner calls for one policy, memoized (see the package docstring).

    ``planner`` is ``milp`` or ``jellybean``. MILP calls that know the current plan add
    :data:`TIE_PENALTY` per worker that would load a model, to break ties toward it.
    ``max_util`` None: the MILP plans within the scenario's latency SLO (where it has a bound);
    given, capacity only at that utilisation.
    """

    def __init__(
        self,
        planner: str = "milp",
        max_util: float | None = None,
        time_limit: float | None = 10.0,
        tie_penalty: float = TIE_PENALTY,
    ) -> None:
        self.planner = planner
        self.max_util = max_util
        self.time_limit = time_limit
        self.tie_penalty = tie_penalty if planner == "milp" else 0.0
        self._cache: dict[tuple[Any, ...], tuple[PlanResult | None, float]] = {}
        self._scales: dict[tuple[Any, ...], float] = {}
        self._reach: dict[tuple[Any, ...], float] = {}
        self._scenario: Scenario | None = None
        self._fp = ""
        self.reused_s = 0.0  # original solve time of memoized results handed out
        self.solves = 0

    def options_key(self) -> tuple[Any, ...]:
        """What a solve depends on besides its scenario, rates and current plan."""
        return (self.planner, self.max_util, self.time_limit, self.tie_penalty)

    def share(self, stores: dict[tuple[Any, ...], tuple[dict, dict, dict]]) -> None:
        """Use one memo with every other cache that shares ``stores`` and has the same
        :meth:`options_key`: solves are deterministic in their key, so policies that plan alike
        (the teacher candidates of an imitation warm start, which differ in headroom and window
        only) reuse each other's solves. Each cache keeps its own :attr:`solves` count."""
        mine = (self._cache, self._scales, self._reach)
        self._cache, self._scales, self._reach = stores.setdefault(self.options_key(), mine)

    def bind(self, scenario: Scenario) -> None:
        if scenario is not self._scenario:
            self._scenario = scenario
            self._fp = scenario_fingerprint(scenario)
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()

    def _util(self) -> dict[str, float]:
        return {} if self.max_util is None else {"max_util": self.max_util}

    def _planner(self, current: Plan | None) -> Any:
        if self.planner == "milp":
            return get_planner(
                "milp",
                time_limit=self.time_limit,
                reconfig_penalty=self.tie_penalty if current is not None else 0.0,
                current_plan=current,
                **self._util(),
            )
        return get_planner(self.planner, **self._util())

    def solve(self, rates: Mapping[str, float], current: Plan | None = None) -> PlanResult | None:
        """The planner's plan at ``rates`` (None when infeasible)."""
        assert self._scenario is not None, "bind() a scenario first"
        cur = current if self.tie_penalty > 0 else None
        key = (
            self._fp,
            tuple(sorted((k, round(float(v), 9)) for k, v in rates.items())),
            plan_signature(self._scenario, cur),
        )
        if key in self._cache:
            result, spent = self._cache[key]
            self.reused_s += spent
            return result
        t0 = time.perf_counter()
        res = self._planner(cur).plan(self._scenario, rates)
        spent = time.perf_counter() - t0
        self.solves += 1
        result = res if res.feasible else None
        if result is not None:
            result.plan = with_rates(result.plan, rates)
        self._cache[key] = (result, spent)
        return result

    def _direction(self, rates: Mapping[str, float]) -> tuple[Any, ...]:
        """Cache key of the rate mix (rates divided by their total) on this scenario."""
        total = sum(rates.values())
        mix = tuple(sorted((k, round(v / total, 9) if total else 0.0) for k, v in rates.items()))
        return (self._fp, mix)

    def max_scale(self, rates: Mapping[str, float]) -> float:
        """Largest multiple of ``rates`` the infrastructure sustains (MILP: within the latency
        SLO, or at ``max_util``)."""
        from jbrl.planning.milp import max_rate

        assert self._scenario is not None
        total = sum(rates.values())
        key = self._direction(rates)
        if total <= 0:
            return math.inf
        if key not in self._scales:  # stored as a total rate: the scale depends on the magnitude
            mr = max_rate(self._scenario, rates=rates, time_limit=30.0, **self._util())
            self._scales[key] = mr.scale * total if mr.status != "infeasible" else 0.0
        return self._scales[key] / total

    def solve_clamped(
        self, rates: Mapping[str, float], current: Plan | None = None
    ) -> tuple[PlanResult | None, dict[str, float]]:
        """Solve at ``rates``, or, when that is infeasible, at the largest sustainable multiple
        of them; returns the result and the rates it was solved at."""
        res = self.solve(rates, current)
        if res is not None:
            return res, dict(rates)
        total = sum(rates.values())
        key = self._direction(rates)
        reach = self._reach.get(key)  # the largest total rate a clamped solve met before
        if reach is not None and 0 < reach < total:
            clamped = scaled(rates, reach / total)
            res = self.solve(clamped, current)
            if res is not None:
                return res, clamped
        hi = min(1.0, self.max_scale(rates))
        if hi <= 0:
            return None, dict(rates)
        best: tuple[PlanResult, dict[str, float]] | None = None
        for shrink in (0.999, 0.99, 0.95):
            clamped = scaled(rates, hi * shrink)
            res = self.solve(clamped, current)
            if res is not None:
                best = (res, clamped)
                break
        else:  # a heuristic may sustain less than the MILP: bisection on a grid of 0.1 %
            lo = 0.0
            hi *= 0.95
            for _ in range(10):
                mid = round((lo + hi) / 2, 3)
                if mid <= lo or mid >= hi:
                    break
                clamped = scaled(rates, mid)
                res = self.solve(clamped, current)
                if res is not None:
                    lo, best = mid, (res, clamped)
                else:
                    hi = mid
        if best is None:
            return None, dict(rates)
        self._reach[key] = max(self._reach.get(key, 0.0), sum(best[1].values()))
        return best
