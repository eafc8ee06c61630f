"""Exact planner: one mixed-integer linear program solved by HiGHS.

The model (minimise $/hour exactly as :mod:`jbrl.planning.cost` defines it):

==========================  =================================================================
variables                   meaning
==========================  =================================================================
``z[c]`` binary             variant combination c (end-to-end accuracy >= target) is chosen
``y[o,v]`` in [0, 1]        operator o runs variant v (``= sum of z[c]`` over c with o=v)
``x[g,o,v]`` integer        how many workers of group g run (o, v); binary for single workers
``r[g,o,v]`` >= 0           req/s those workers serve together
``f[e,g,h,k]`` >= 0         req/s of edge e=(u,v) sent from u's workers in g (running a variant
                            of message-size class k) to v's workers in h
``d[g,o,v]`` >= 0           workers of g newly loading (o, v) (reconfiguration penalty only)
==========================  =================================================================

constraints (named in the model): ``pick_combo`` (one combination), ``variant`` (y = sum z),
``one_op`` (a worker hosts at most one operator: sum x <= |g|), ``use_variant`` (x <= |g| y),
``cap`` (r <= max_util * capacity * x), ``min_rate`` (r >= 1e-4 x: a paid worker serves),
``demand`` (sum r = required rate of o), ``inflow`` (what h's workers of v receive on e = what
they serve), ``outflow`` (what g's workers of u send on e <= ratio * what they serve),
``reconfig`` (d >= x - workers of g already running (o, v)).

objective: ``sum price_g x + sum kb * link$ * f + sum kb_source * link$ * r (source edges)
+ penalty * sum d``. Explicit flows make the communication cost linear; proportional mixing (the
cost model's default without routing) is one feasible routing, so the optimum is never worse.

Aggregation (:mod:`jbrl.planning.groups`): interchangeable workers form one group with an integer
count, flows run between groups, and the solution is disaggregated (equal rates per worker;
flows split by a north-west-corner transport fill). Link costs are uniform within a group pair,
so the disaggregated plan costs exactly the MILP objective. Per-pair bandwidth limits are exact
without aggregation; with it, source links are exact (a per-worker rate bound) and worker-to-
worker links are checked up front: if any could bind, aggregation is switched off.

:func:`max_rate` solves the same model with demand ``lambda * rates`` and maximises lambda.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import highspy
import numpy as np

from jbrl.errors import InputError
from jbrl.planning.base import PlanResult, finish, full_rates, target_accuracy
from jbrl.planning.milp.bounds import MaxRate, explain_infeasible
from jbrl.planning.milp.combos import Combo, allowed_combinations, chosen_combo
from jbrl.planning.milp.extract import extract_plan, solve_status
from jbrl.planning.milp.highs import OptionValue, run_highs
from jbrl.planning.milp.layout import ModelOptions, plan_layout
from jbrl.planning.milp.model import BuiltModel, build_model
from jbrl.planning.milp.warm_start import warm_start_values
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario


class MilpPlanner:
    """Exact MILP planner (HiGHS). See the module docstring for the model.

    Options:
        max_util: serve at most this fraction of each worker's capacity (latency headroom).
        time_limit: seconds for HiGHS; the best plan found so far is returned as ``feasible``.
        mip_rel_gap: relative optimality gap at which HiGHS stops.
        aggregate: group interchangeable workers (see :mod:`jbrl.planning.groups`).
        bandwidth: respect link bandwidth (MB/s per sender->receiver pair).
        warm_start: a plan to start from (its integer choices are handed to HiGHS).
        current_plan, reconfig_penalty: $ added per worker that must load a model it does not
            hold in ``current_plan`` (online re-planning; 0 disables).
        write_model: write the model to this ``.lp`` / ``.mps`` file before solving.
        workers: only these workers may be used (default: all).
        variants: fix these operators' variants.
        most_accurate: only the most accurate combination(s) of the table are allowed.
        threads: HiGHS threads (default: HiGHS's choice).
        prune_dominated: drop a variant combination when another allowed one is at least as
            fast on every worker with messages no larger, for every operator (exact; off while
            a reconfiguration penalty applies, since keeping a loaded variant may pay).
    """

    name = "milp"

    def __init__(
        self,
        max_util: float = 1.0,
        time_limit: float | None = 60.0,
        mip_rel_gap: float = 1e-6,
        aggregate: bool = True,
        bandwidth: bool = True,
        warm_start: Plan | None = None,
        current_plan: Plan | None = None,
        reconfig_penalty: float = 0.0,
        write_model: str | Path | None = None,
        workers: Sequence[str] | None = None,
        variants: Mapping[str, str] | None = None,
        most_accurate: bool = False,
        threads: int | None = None,
        prune_dominated: bool = True,
        name: str | None = None,
    ) -> None:
        if not (0 < max_util <= 1.0 + 1e-12):
            raise InputError("must be in (0, 1]", field="max_util", value=max_util)
        if time_limit is not None and not time_limit > 0:
            raise InputError("must be > 0 seconds", field="time_limit", value=time_limit)
        if not mip_rel_gap >= 0:
            raise InputError("must be >= 0", field="mip_rel_gap", value=mip_rel_gap)
        if reconfig_penalty < 0:
            raise InputError("must be >= 0", field="reconfig_penalty", value=reconfig_penalty)
        if write_model is not None and Path(write_model).suffix not in (".lp", ".mps"):
            raise InputError("must end in .lp or .mps", field="write_model", value=str(write_model))
        self.max_util = float(max_util)
        self.time_limit = time_limit
        self.mip_rel_gap = float(mip_rel_gap)
        self.aggregate = aggregate
        self.bandwidth = bandwidth
        self.warm_start = warm_start
        self.current_plan = current_plan
        self.reconfig_penalty = float(reconfig_penalty)
        self.write_model = write_model
        self.workers = list(workers) if workers is not None else None
        self.variants = dict(variants or {})
        self.most_accurate = most_accurate
        self.threads = threads
        self.prune_dominated = prune_dominated
        if name is not None:
            self.name = name

    def model_options(self) -> ModelOptions:
        """The options that shape the model (see :mod:`jbrl.planning.milp.layout`)."""
        return ModelOptions(
            max_util=self.max_util,
            aggregate=self.aggregate,
            bandwidth=self.bandwidth,
            prune_dominated=self.prune_dominated,
            reconfig_penalty=self.reconfig_penalty,
            workers=self.workers,
        )

    # ------------------------------------------------------------------ public

    def plan(
        self,
        scenario: Scenario,
        rates: Mapping[str, float] | None = None,
        accuracy: float | None = None,
        *,
        current_plan: Plan | None = None,
        warm_start: Plan | None = None,
    ) -> PlanResult:
        """Cheapest plan at ``rates`` (default nominal) meeting ``accuracy`` (default SLO)."""
        t0 = time.perf_counter()
        rates_d = full_rates(scenario, rates)
        target = target_accuracy(scenario, accuracy)
        current = current_plan if current_plan is not None else self.current_plan
        start = warm_start if warm_start is not None else self.warm_start
        combos = self._combinations(scenario, target)
        if not combos:
            return self._infeasible(scenario, rates_d, target, t0)
        built = self._build(scenario, scenario.demand(rates_d), combos, current, scale_mode=False)
        h = built.lm.to_highs(self._options())
        if start is not None:
            warm = warm_start_values(scenario, built, start, rates_d)
            if warm is not None:
                h.setSolution(len(warm[0]), warm[0], warm[1])
        if (
            self.write_model is not None
            and h.writeModel(str(self.write_model)) == highspy.HighsStatus.kError
        ):
            raise InputError("cannot write the model file", file=str(self.write_model))
        run_highs(h, self.threads)
        status, gap = solve_status(h, built.lm.num_integer > 0)
        if status is None:
            return self._no_plan(h, built, scenario, rates_d, target, t0)
        values = np.asarray(h.getSolution().col_value)
        plan, changed = extract_plan(scenario, built, values, current)
        extra: dict[str, Any] = {
            "objective": float(h.getInfo().objective_function_value),
            "model": built.size(),
            "aggregated": built.aggregated,
            "groups": len(built.groups),
            "notes": built.notes,
            "highs_status": h.modelStatusToString(h.getModelStatus()),
        }
        if current is not None:
            extra["changed_workers"] = changed
            extra["reconfiguration_penalty"] = self.reconfig_penalty * changed
        elapsed = time.perf_counter() - t0
        result, _ = finish(scenario, plan, self.name, status, rates_d, target, elapsed, gap, extra)
        return result

    def max_rate(
        self,
        scenario: Scenario,
        accuracy: float | None = None,
        rates: Mapping[str, float] | None = None,
    ) -> MaxRate:
        """Largest ``lambda`` such that ``lambda * rates`` (default nominal) can be served."""
        t0 = time.perf_counter()
        base = full_rates(scenario, rates)
        if not any(v > 0 for v in base.values()):
            base = scenario.nominal_rates()
        target = target_accuracy(scenario, accuracy)
        combos = self._combinations(scenario, target)
        if not combos:
            return MaxRate(0.0, dict.fromkeys(base, 0.0), base, target, "infeasible", 0.0)
        built = self._build(scenario, scenario.demand(base), combos, None, scale_mode=True)
        h = built.lm.to_highs(self._options())
        run_highs(h, self.threads)
        status, _ = solve_status(h, built.lm.num_integer > 0)
        if status is None or built.lam is None:
            return MaxRate(
                0.0, dict.fromkeys(base, 0.0), base, target, "infeasible", time.perf_counter() - t0
            )
        values = np.asarray(h.getSolution().col_value)
        lam = max(0.0, float(values[built.lam]))
        # Without choice columns this reports the first allowed combination *before* dominance
        # pruning, which can differ from the one the model ran (built.combos[0]); kept as it was.
        combo = chosen_combo(built.combos, built.z, values) if built.z else combos[0]
        return MaxRate(
            lam,
            {s: lam * v for s, v in base.items()},
            base,
            target,
            status,
            time.perf_counter() - t0,
            dict(combo[0]),
        )

    # ------------------------------------------------------------------ steps

    def _options(self) -> dict[str, OptionValue]:
        opts: dict[str, OptionValue] = {"mip_rel_gap": self.mip_rel_gap, "random_seed": 0}
        if self.time_limit is not None:
            opts["time_limit"] = float(self.time_limit)
        if self.threads is not None:
            opts["threads"] = int(self.threads)
        return opts

    def _combinations(self, scenario: Scenario, target: float) -> list[Combo]:
        return allowed_combinations(scenario, target, self.variants, self.most_accurate)

    def _build(
        self,
        scenario: Scenario,
        demand: Mapping[str, float],
        combos: list[Combo],
        current: Plan | None,
        scale_mode: bool,
    ) -> BuiltModel:
        options = self.model_options()
        layout = plan_layout(scenario, combos, current, options)
        return build_model(scenario, demand, layout, current, options, scale_mode)

    def _no_plan(
        self,
        h: highspy.Highs,
        built: BuiltModel,
        scenario: Scenario,
        rates: dict[str, float],
        target: float,
        t0: float,
    ) -> PlanResult:
        """HiGHS has no plan: proven infeasible, or stopped (time limit, ...) before finding
        one, which proves nothing."""
        ms = h.getModelStatus()
        if ms in (
            highspy.HighsModelStatus.kInfeasible,
            highspy.HighsModelStatus.kUnboundedOrInfeasible,
        ):
            return self._infeasible(scenario, rates, target, t0)
        reason = {
            "message": f"no plan found before HiGHS stopped ({h.modelStatusToString(ms)}, "
            f"time limit {self.time_limit} s); infeasibility is not proven",
            "proven": False,
            "accuracy_target": target,
            "best_reachable_accuracy": scenario.best_accuracy(),
            "requested_rates": rates,
            "time_limit_s": self.time_limit,
        }
        return PlanResult.infeasible(
            self.name, reason, time.perf_counter() - t0, model=built.size()
        )

    def _infeasible(
        self, scenario: Scenario, rates: dict[str, float], target: float, t0: float
    ) -> PlanResult:
        probe = MilpPlanner(
            max_util=self.max_util,
            time_limit=min(self.time_limit or 30.0, 30.0),
            mip_rel_gap=1e-4,
            aggregate=self.aggregate,
            bandwidth=self.bandwidth,
            workers=self.workers,
            variants=self.variants,
            most_accurate=self.most_accurate,
            threads=self.threads,
        )
        reason = explain_infeasible(scenario, rates, target, probe)
        return PlanResult.infeasible(self.name, reason, time.perf_counter() - t0)


# --------------------------------------------------------------------------- functions


def max_rate(
    scenario: Scenario,
    accuracy: float | None = None,
    rates: Mapping[str, float] | None = None,
    **options: Any,
) -> MaxRate:
    """Largest uniform scale of ``rates`` (default nominal) sustainable at ``accuracy``.

    ``options`` are :class:`MilpPlanner` options (``max_util``, ``workers``, ...).
    """
    options.setdefault("mip_rel_gap", 1e-4)
    return MilpPlanner(**options).max_rate(scenario, accuracy, rates)


def infeasibility_reason(
    scenario: Scenario,
    rates: Mapping[str, float],
    target: float,
    probe: MilpPlanner | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """Why a request cannot be met, with numbers (:func:`~jbrl.planning.milp.bounds.
    explain_infeasible`); ``probe`` (default: a 30 s MILP at gap 1e-4) measures the max rate."""
    probe = probe or MilpPlanner(mip_rel_gap=1e-4, time_limit=30.0)
    return explain_infeasible(scenario, rates, target, probe, message)
