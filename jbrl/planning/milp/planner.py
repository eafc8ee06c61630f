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

**Latency.** Where the scenario has a latency bound (``slo.latency_ms``) the model is SLO-aware
(``latency_model="queueing"``, the default): ``x`` and ``r`` exist per batch size as well
(one batch size per worker, among the profiled ones), each operator gets a stage budget among
discrete levels whose sums along every path fit the bound, and ``cap`` becomes each worker's
SLO-safe rate at its operator's level (:mod:`jbrl.planning.milp.slo` states that model and its
approximations); the planner then loosens that per-stage model while the end-to-end predictor
confirms the attainment target (:mod:`jbrl.planning.milp.calibrate`). ``max_util`` given
explicitly, ``latency_model="none"`` or a scenario without a bound: capacity-only planning at
batch 1, as above (JellyBean's semantics).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import highspy
import numpy as np

from jbrl.errors import InputError
from jbrl.planning.base import PlanResult, finish, full_rates, target_accuracy
from jbrl.planning.latency import SERVICE_FAMILIES
from jbrl.planning.milp.bounds import MaxRate, explain_infeasible
from jbrl.planning.milp.calibrate import FLOOR, LADDER, Attempt, Search, search_looseness
from jbrl.planning.milp.combos import Combo, allowed_combinations, chosen_combo
from jbrl.planning.milp.extract import extract_plan, solve_status
from jbrl.planning.milp.highs import OptionValue, run_highs
from jbrl.planning.milp.layout import ModelOptions, plan_layout, restrict_levels
from jbrl.planning.milp.levels import EXACT_LEVEL_CELLS, level_cells, relaxed_levels
from jbrl.planning.milp.model import BuiltModel, build_model
from jbrl.planning.milp.slo import DEFAULT_LEVELS, SloTarget
from jbrl.planning.milp.verdict import (
    Solved,
    has_predictor,
    judge,
    latency_facts,
    latency_reason,
)
from jbrl.planning.milp.warm_start import warm_start_values
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario

LATENCY_MODELS: tuple[str, ...] = ("queueing", "none")
"""``queueing``: SLO-aware where the scenario has a bound; ``none``: capacity-only."""


class MilpPlanner:
    """Exact MILP planner (HiGHS). See the module docstring for the model.

    Options:
        max_util: serve at most this fraction of each worker's capacity. Given explicitly, it
            overrides latency-aware planning: capacity-only at this utilisation.
        latency_model: ``queueing`` (default): SLO-aware where the scenario has a latency
            bound; ``none``: capacity-only planning (at ``max_util``, default 1).
        slo_levels: stage budget levels per operator of the SLO-aware model.
        family: service-time distribution of the latency model (as the simulators' ``service``).
        max_batch: the largest batch size the SLO-aware model may choose (default 1: no
            batching; None: every profiled size). Batching is opt-in for now: a batched
            worker's sojourn costs 20-300 ms to evaluate, and a cold plan of vqa with its
            batch-4 rows takes tens of CPU seconds (experiments/results/slo_planning_extras.md),
            too slow for the controller's decisions.
        time_limit: seconds for HiGHS (per solve); the best plan found so far is returned as
            ``feasible``.
        mip_rel_gap: relative optimality gap at which HiGHS stops.
        aggregate: group interchangeable workers (see :mod:`jbrl.planning.groups`).
        bandwidth: respect link bandwidth (MB/s per sender->receiver pair).
        warm_start: a plan to start from (its integer choices are handed to HiGHS).
        current_plan, reconfig_penalty: $ added per worker that must load a model it does not
            hold in ``current_plan`` (online re-planning; 0 disables).
        keep_current: every worker of ``current_plan`` keeps its operator and variant (the
            plan may only add workers and move traffic: the SLO shield's scale-up only).
        write_model: write the model to this ``.lp`` / ``.mps`` file before solving.
        workers: only these workers may be used (default: all).
        variants: fix these operators' variants.
        most_accurate: only the most accurate combination(s) of the table are allowed.
        threads: HiGHS threads (default: HiGHS's choice).
        prune_dominated: drop a variant combination when another allowed one is at least as
            fast on every worker with messages no larger, for every operator (exact; off while
            a reconfiguration penalty applies, since keeping a loaded variant may pay, and with
            a latency target, since capacity says nothing about tails).
    """

    name = "milp"

    def __init__(
        self,
        max_util: float | None = None,
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
        latency_model: str = "queueing",
        slo_levels: int = DEFAULT_LEVELS,
        family: str = "lognormal",
        max_batch: int | None = 1,
        keep_current: bool = False,
    ) -> None:
        if max_util is not None and not (0 < max_util <= 1.0 + 1e-12):
            raise InputError("must be in (0, 1]", field="max_util", value=max_util)
        if time_limit is not None and not time_limit > 0:
            raise InputError("must be > 0 seconds", field="time_limit", value=time_limit)
        if not mip_rel_gap >= 0:
            raise InputError("must be >= 0", field="mip_rel_gap", value=mip_rel_gap)
        if reconfig_penalty < 0:
            raise InputError("must be >= 0", field="reconfig_penalty", value=reconfig_penalty)
        if write_model is not None and Path(write_model).suffix not in (".lp", ".mps"):
            raise InputError("must end in .lp or .mps", field="write_model", value=str(write_model))
        if latency_model not in LATENCY_MODELS:
            raise InputError(
                f"must be one of {', '.join(LATENCY_MODELS)}",
                field="latency_model",
                value=latency_model,
            )
        if not (isinstance(slo_levels, int) and slo_levels >= 2):
            raise InputError("must be an integer >= 2", field="slo_levels", value=slo_levels)
        if family not in SERVICE_FAMILIES:
            raise InputError(
                f"must be one of {', '.join(SERVICE_FAMILIES)}", field="family", value=family
            )
        if max_batch is not None and not (isinstance(max_batch, int) and max_batch >= 1):
            raise InputError("must be an integer >= 1", field="max_batch", value=max_batch)
        self.max_batch = max_batch
        self.keep_current = keep_current
        self.max_util = 1.0 if max_util is None else float(max_util)
        self.max_util_given = max_util is not None
        self.latency_model = latency_model
        self.slo_levels = slo_levels
        self.family = family
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

    def latency_aware(self, scenario: Scenario) -> bool:
        """Whether plans for ``scenario`` meet its latency bound by the latency model (it has a
        bound, and neither ``max_util`` nor ``latency_model="none"`` asks for capacity only)."""
        return (
            self.latency_model != "none"
            and not self.max_util_given
            and scenario.slo.bound_s is not None
        )

    def model_options(
        self, slo: SloTarget | None = None, max_util: float | None = None
    ) -> ModelOptions:
        """The options that shape the model (see :mod:`jbrl.planning.milp.layout`);
        ``max_util`` overrides the planner's (the calibration's floor)."""
        return ModelOptions(
            max_util=self.max_util if max_util is None else max_util,
            aggregate=self.aggregate,
            bandwidth=self.bandwidth,
            prune_dominated=self.prune_dominated,
            reconfig_penalty=self.reconfig_penalty,
            workers=self.workers,
            slo=slo,
            levels=self.slo_levels,
            family=self.family,
            max_batch=self.max_batch,
            keep_current=self.keep_current,
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
        """Cheapest plan at ``rates`` (default nominal) meeting ``accuracy`` (default SLO) and,
        where the scenario has one, its latency bound at its attainment target."""
        t0 = time.perf_counter()
        rates_d = full_rates(scenario, rates)
        target = target_accuracy(scenario, accuracy)
        current = current_plan if current_plan is not None else self.current_plan
        start = warm_start if warm_start is not None else self.warm_start
        combos = self._combinations(scenario, target)
        if not combos:
            return self._infeasible(scenario, rates_d, target, t0)
        demand = scenario.demand(rates_d)
        if not self.latency_aware(scenario):
            solved = self._solve(scenario, demand, combos, current, start, None, rates_d)
            if solved.status is None:
                return self._no_plan(solved.h, solved.built, scenario, rates_d, target, t0)
            return self._result(scenario, solved, current, rates_d, target, t0)
        # The floor refines a confirmed plan: it runs only within the time limit (one deadline
        # for the whole search), so a large model's search stays within --time-limit.
        deadline = None if self.time_limit is None else t0 + float(self.time_limit)

        def floor(u: float) -> Attempt[Solved]:
            return self._attempt(
                scenario, demand, combos, current, start, rates_d, FLOOR, u, deadline
            )

        search = search_looseness(
            lambda theta: self._attempt(scenario, demand, combos, current, start, rates_d, theta),
            ladder=LADDER if has_predictor() else (1.0,),
            floor=floor if has_predictor() else None,
        )
        if search.chosen is None or search.chosen.solution is None:
            return self._latency_infeasible(scenario, rates_d, target, search, t0)
        return self._result(scenario, search.chosen.solution, current, rates_d, target, t0, search)

    def max_rate(
        self,
        scenario: Scenario,
        accuracy: float | None = None,
        rates: Mapping[str, float] | None = None,
    ) -> MaxRate:
        """Largest ``lambda`` such that ``lambda * rates`` (default nominal) can be served
        (within the latency bound at its attainment target, where the model is SLO-aware)."""
        t0 = time.perf_counter()
        base = full_rates(scenario, rates)
        if not any(v > 0 for v in base.values()):
            base = scenario.nominal_rates()
        target = target_accuracy(scenario, accuracy)
        combos = self._combinations(scenario, target)
        if not combos:
            return MaxRate(0.0, dict.fromkeys(base, 0.0), base, target, "infeasible", 0.0)
        demand = scenario.demand(base)
        if not self.latency_aware(scenario):
            solved = self._solve_scale(scenario, demand, combos, None)
        else:
            search = search_looseness(
                lambda theta: self._scale_attempt(scenario, demand, combos, base, theta),
                ladder=LADDER if has_predictor() else (1.0,),
            )
            solved = search.chosen.solution if search.chosen is not None else None
        if solved is None or solved.status is None:
            return MaxRate(
                0.0, dict.fromkeys(base, 0.0), base, target, "infeasible", time.perf_counter() - t0
            )
        lam = solved.scale
        aware = self.latency_aware(scenario)
        return MaxRate(
            lam,
            {s: lam * v for s, v in base.items()},
            base,
            target,
            solved.status,
            time.perf_counter() - t0,
            dict(solved.combo[0]),
            scenario.slo.latency_ms if aware else None,
            scenario.slo.attainment if aware else None,
        )

    # ------------------------------------------------------------------ steps

    def _options(self, time_limit: float | None = None) -> dict[str, OptionValue]:
        opts: dict[str, OptionValue] = {"mip_rel_gap": self.mip_rel_gap, "random_seed": 0}
        limit = self.time_limit if time_limit is None else time_limit
        if limit is not None:
            opts["time_limit"] = float(limit)
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
        slo: SloTarget | None = None,
        max_util: float | None = None,
    ) -> BuiltModel:
        options = self.model_options(slo, max_util)
        layout = plan_layout(scenario, combos, current, options)
        if layout.stages is not None and level_cells(layout) > EXACT_LEVEL_CELLS:
            proxy = build_model(scenario, demand, layout, current, options, scale_mode, False)
            keep = relaxed_levels(proxy, self._options(), self.threads)
            layout = restrict_levels(scenario, layout, keep)
            built = build_model(scenario, demand, layout, current, options, scale_mode)
            built.notes.append("budget levels: those around the LP relaxation's budgets")
            return built
        return build_model(scenario, demand, layout, current, options, scale_mode)

    def _solve(
        self,
        scenario: Scenario,
        demand: Mapping[str, float],
        combos: list[Combo],
        current: Plan | None,
        start: Plan | None,
        slo: SloTarget | None,
        rates: Mapping[str, float],
        max_util: float | None = None,
        time_limit: float | None = None,
    ) -> Solved:
        """Build and solve the cost model; the plan when HiGHS has one (``time_limit``: this
        solve's, instead of the planner's)."""
        built = self._build(scenario, demand, combos, current, False, slo, max_util)
        h = built.lm.to_highs(self._options(time_limit))
        if start is not None:
            warm = warm_start_values(scenario, built, start, rates)
            if warm is not None:
                h.setSolution(len(warm[0]), warm[0], warm[1])
        if (
            self.write_model is not None
            and h.writeModel(str(self.write_model)) == highspy.HighsStatus.kError
        ):
            raise InputError("cannot write the model file", file=str(self.write_model))
        run_highs(h, self.threads)
        status, gap = solve_status(h, built.lm.num_integer > 0)
        solved = Solved(h, built, status, gap, slo)
        if status is not None:
            values = np.asarray(h.getSolution().col_value)
            solved.plan, solved.changed = extract_plan(scenario, built, values, current)
            # the reported cost leaves out the accuracy tie-break (model.add_choice)
            bonus = sum(built.lm.col_cost[j] * values[j] for j in built.z)
            solved.objective = float(h.getInfo().objective_function_value) - float(bonus)
            solved.combo = chosen_combo(built.combos, built.z, values)
        return solved

    def _solve_scale(
        self,
        scenario: Scenario,
        demand: Mapping[str, float],
        combos: list[Combo],
        slo: SloTarget | None,
    ) -> Solved | None:
        """Build and solve the max-rate model; None when HiGHS has no solution."""
        built = self._build(scenario, demand, combos, None, True, slo)
        h = built.lm.to_highs(self._options())
        run_highs(h, self.threads)
        status, gap = solve_status(h, built.lm.num_integer > 0)
        if status is None or built.lam is None:
            return None
        values = np.asarray(h.getSolution().col_value)
        solved = Solved(h, built, status, gap, slo)
        solved.scale = max(0.0, float(values[built.lam]))
        solved.objective = -solved.scale
        # Without choice columns this reports the first allowed combination *before* dominance
        # pruning, which can differ from the one the model ran (built.combos[0]); kept as it was.
        solved.combo = chosen_combo(built.combos, built.z, values) if built.z else combos[0]
        solved.plan, _ = extract_plan(scenario, built, values, None)
        return solved

    def _attempt(
        self,
        scenario: Scenario,
        demand: Mapping[str, float],
        combos: list[Combo],
        current: Plan | None,
        start: Plan | None,
        rates: Mapping[str, float],
        theta: float,
        util: float | None = None,
        deadline: float | None = None,
    ) -> Attempt[Solved]:
        """One attempt of the calibration, predicted: the rung at looseness ``theta``, or with
        ``util`` the floor's capacity-only plan at that utilisation cap. None (no plan) once
        ``deadline`` (``time.perf_counter()``) has passed; the solve's time limit is what is left
        until it."""
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            return Attempt(theta, None, math.inf, False, util=util)
        slo = SloTarget.of(scenario, demand, theta) if util is None else None
        solved = self._solve(scenario, demand, combos, current, start, slo, rates, util, left)
        if solved.status is None or solved.plan is None:
            return Attempt(theta, None, math.inf, False, util=util)
        a = judge(scenario, solved, rates, theta, solved.objective, self.family)
        a.util = util
        return a

    def _scale_attempt(
        self,
        scenario: Scenario,
        demand: Mapping[str, float],
        combos: list[Combo],
        base: Mapping[str, float],
        theta: float,
    ) -> Attempt[Solved]:
        """One rung of the max-rate calibration: the largest scale at ``theta``, predicted at
        that scale of ``base``."""
        slo = SloTarget.of(scenario, demand, theta)
        solved = self._solve_scale(scenario, demand, combos, slo)
        if solved is None or solved.plan is None:
            return Attempt(theta, None, math.inf, False)
        rates = {s: solved.scale * v for s, v in base.items()}
        return judge(scenario, solved, rates, theta, -solved.scale, self.family)

    def _result(
        self,
        scenario: Scenario,
        solved: Solved,
        current: Plan | None,
        rates: dict[str, float],
        target: float,
        t0: float,
        search: Search[Solved] | None = None,
    ) -> PlanResult:
        """The plan of ``solved`` costed (and, SLO-aware, with its latency facts)."""
        assert solved.plan is not None and solved.status is not None
        built, h = solved.built, solved.h
        extra: dict[str, Any] = {
            "objective": solved.objective,
            "model": built.size(),
            "aggregated": built.aggregated,
            "groups": len(built.groups),
            "notes": built.notes,
            "highs_status": h.modelStatusToString(h.getModelStatus()),
        }
        if current is not None:
            extra["changed_workers"] = solved.changed
            extra["reconfiguration_penalty"] = self.reconfig_penalty * solved.changed
        if search is not None:
            extra["latency"] = latency_facts(scenario, solved, search)
        elapsed = time.perf_counter() - t0
        result, _ = finish(
            scenario, solved.plan, self.name, solved.status, rates, target, elapsed, solved.gap,
            extra,
        )  # fmt: skip
        return result

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

    def _latency_infeasible(
        self,
        scenario: Scenario,
        rates: dict[str, float],
        target: float,
        search: Search[Solved],
        t0: float,
    ) -> PlanResult:
        """No rung confirmed: capacity or accuracy when even capacity-only planning fails at
        these rates, else the latency bound (with the best prediction)."""
        capacity_only = MilpPlanner(
            latency_model="none",
            time_limit=self.time_limit,
            aggregate=self.aggregate,
            bandwidth=self.bandwidth,
            workers=self.workers,
            variants=self.variants,
            most_accurate=self.most_accurate,
            threads=self.threads,
        )
        if not capacity_only.plan(scenario, rates, target).feasible:
            return self._infeasible(scenario, rates, target, t0)
        reason = latency_reason(scenario, rates, target, search)
        return PlanResult.infeasible(self.name, reason, time.perf_counter() - t0)

    def _infeasible(
        self, scenario: Scenario, rates: dict[str, float], target: float, t0: float
    ) -> PlanResult:
        probe = MilpPlanner(
            max_util=self.max_util if self.max_util_given else None,
            time_limit=min(self.time_limit or 30.0, 30.0),
            mip_rel_gap=1e-4,
            aggregate=self.aggregate,
            bandwidth=self.bandwidth,
            workers=self.workers,
            variants=self.variants,
            most_accurate=self.most_accurate,
            threads=self.threads,
            latency_model=self.latency_model,
            slo_levels=self.slo_levels,
            family=self.family,
            max_batch=self.max_batch,
        )
        reason = explain_infeasible(scenario, rates, target, probe)
        reason["latency_aware"] = self.latency_aware(scenario)
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
