"""``oracle``: the clairvoyant bound - the cheapest *sequence* of plans given the whole future,
charging model-load downtime as the simulators do (a reference, not deployable).

MILP-oracle (:mod:`~jbrl.agents.rules.oracle`) re-plans for the true peak of every coming
interval and ignores what a change costs: every worker whose model changes is down for its load
time (:func:`jbrl.sim.compiled.load_changes`), so a run of per-interval optima loses requests at
every switch. ``oracle`` instead chooses, by dynamic programming over the control intervals, one
plan per interval among candidate plans, so that

* the plan of interval ``k`` covers the interval's true peak (the peak clamped to what the
  infrastructure sustains, as every planner policy does): its predicted attainment there meets
  the SLO target (:func:`jbrl.planning.coverage.coverage`);
* a switch at the start of interval ``k`` is *safe* when the new plan without its loading
  workers (those whose (operator, variant) the old plan does not run on them) still covers the
  true peak over the load time; otherwise the requests that arrive during the load are *at
  risk*, and the switches of the whole sequence may put at most ``risk_budget`` (default 0.1)
  of the SLO's allowance of late requests at risk (0.1 x 1 % of the trace's requests at a 99 %
  target) - or the switch must be made earlier, to a plan that covers both sides, or not at
  all;
* the total $ (each plan's cost at the interval's mean rates, for the interval) is least.

The budget is met by Lagrangian relaxation: the dynamic programme prices a request at risk at
:data:`RISK_PRICES` in turn (cheapest first) and keeps the first sequence within the budget; the
last price is infinite (requests at risk before any dollar, lexicographically), so at worst the
sequence puts the fewest requests at risk. An interval whose plan does not cover its peak puts
all its requests at risk, always before any dollar. The first plan is free, as the simulators
start warm (``SimConfig.warm_start``).

Candidates: the SLO-aware MILP's plan for the trace's peak (MILP-static's plan, so the oracle is
never dearer than MILP-static where that plan covers every interval) and, for every window
length ``h`` in ``windows`` (intervals), the plan for the true peak over intervals
``k .. k+h-1`` for every ``k`` a multiple of ``ceil(h / 2)`` (windows overlapping by half),
solved in time order with the tie-breaking penalty against the previous window's plan (so
neighbouring candidates extend each other and switching between them loads few models).
``h = 1`` gives MILP-oracle's targets; longer windows give the plans that ride through a valley
without a switch, and fewer solves. ``headroom`` h: candidates are planned for, and must cover,
the peaks x (1 + h).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jbrl.agents.policy import ControlState
from jbrl.agents.rules.base import PlannerPolicy, lookahead_of
from jbrl.errors import InfeasibleError, InputError
from jbrl.planning.coverage import (
    coverage,
    design_rates,
    plan_signature,
    scaled,
)
from jbrl.planning.plan import Plan, WorkerShare
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace

Cost = tuple[float, float]
"""(requests at risk, dollars): compared lexicographically."""
RISK_PRICES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, math.inf)

_SHARED_LIMIT = 32
_SHARED: dict[tuple[str, ...], Schedule] = {}
"""Schedules computed in this process, shared by every ``oracle`` with the same parameters:
a benchmark builds a fresh policy per run, and the sequence does not depend on the simulator's
seed, so a second seed on the same trace and scenario (load times included) plays the first
one's sequence back instead of solving its candidates again (minutes on the fleet scenario).
Oldest first out beyond ``_SHARED_LIMIT`` entries."""
"""$ per request at risk in a switch, tried in turn until the sequence's switches put at most
the risk budget at risk (``inf``: no request at risk is worth any dollar)."""


def cheapest_sequence(
    step_cost: Sequence[Sequence[Cost]],
    switch_cost: Callable[[int, int, int], Cost],
) -> tuple[list[int], Cost]:
    """The sequence of candidates (one per step) of least total cost, and that cost.

    ``step_cost[k][c]``: (penalty, $) of running candidate ``c`` in step ``k``;
    ``switch_cost(k, a, b)``: the cost (both parts >= 0) of switching from ``a`` to ``b`` at
    the start of step ``k`` (staying is free, the first step has no switch). Costs add up
    componentwise and compare lexicographically. Exact dynamic programming (Viterbi):
    ``switch_cost`` is asked
    lazily - for each step and target, the predecessors in order of their cost so far, until no
    later one can win - since it is the expensive part. Ties go to staying, then to the lowest
    index, so the answer is deterministic.
    """
    n_steps = len(step_cost)
    if n_steps == 0:
        return [], (0.0, 0.0)
    n = len(step_cost[0])
    if n == 0 or any(len(row) != n for row in step_cost):
        raise ValueError("every step needs a cost for every candidate (at least one)")
    acc: list[Cost] = [tuple(c) for c in step_cost[0]]  # type: ignore[misc]
    back: list[list[int]] = []
    for k in range(1, n_steps):
        order = sorted(range(n), key=lambda c: (acc[c], c))
        new_acc: list[Cost] = []
        prev_of: list[int] = []
        for b in range(n):
            best, arg = acc[b], b
            for a in order:
                if acc[a] >= best:
                    break  # switch costs are >= 0: no later predecessor can win
                if a == b:
                    continue
                sw = switch_cost(k, a, b)
                cand = (acc[a][0] + sw[0], acc[a][1] + sw[1])
                if cand < best:
                    best, arg = cand, a
            new_acc.append((best[0] + step_cost[k][b][0], best[1] + step_cost[k][b][1]))
            prev_of.append(arg)
        back.append(prev_of)
        acc = new_acc
    last = min(range(n), key=lambda c: (acc[c], c))
    seq = [last]
    for prev_of in reversed(back):
        seq.append(prev_of[seq[-1]])
    seq.reverse()
    return seq, acc[last]


@dataclass
class SequenceProblem:
    """What the dynamic programme chooses from: candidate plans, the steps, ``step_cost[k][c]``
    and the switch check (``switch.penalty(k, a, b)``)."""

    candidates: list[Plan]
    steps: list[tuple[float, float]]
    step_cost: list[list[Cost]]
    switch: SwitchCheck

    def switch_cost(self, price: float) -> Callable[[int, int, int], Cost]:
        """The switch cost of the dynamic programme: the requests at risk at ``price`` $ each
        (``inf``: before any dollar, lexicographically)."""
        pen = self.switch.penalty
        if math.isinf(price):
            return lambda k, a, b: (pen(k, a, b), 0.0)
        return lambda k, a, b: (0.0, price * pen(k, a, b))

    def switch_risk(self, seq: Sequence[int]) -> float:
        """Requests at risk in the switches of ``seq``."""
        return sum(self.switch.penalty(k, seq[k - 1], seq[k]) for k in range(1, len(seq)))

    def total(self, seq: Sequence[int]) -> Cost:
        """(requests at risk, $) of a whole sequence (one candidate per step)."""
        risk = sum(self.step_cost[k][c][0] for k, c in enumerate(seq)) + self.switch_risk(seq)
        return (risk, sum(self.step_cost[k][c][1] for k, c in enumerate(seq)))


@dataclass
class Schedule:
    """The oracle's answer for one trace: the plan of every step and how it was found."""

    plans: list[Plan]
    step_s: float
    info: dict[str, Any] = field(default_factory=dict)


class OraclePolicy(PlannerPolicy):
    """The clairvoyant bound (``oracle:windows=1,4,16``): the cheapest plan sequence given the
    whole trace, load downtime charged (module docstring). Not deployable (it reads
    ``ControlState.lookahead``). ``windows``: the window lengths (intervals, comma-separated)
    whose true peaks give the candidate plans; plus the planner policies' parameters
    (``headroom``, ``grid``, ``max_util``, ``time_limit``).

    It computes the whole sequence at its first decision (on the interval length it is asked
    with) and then plays it back; :attr:`last_schedule` holds the sequence's figures
    (candidates, solves, switches, unsafe switches, uncovered steps, predicted $).
    """

    name = "oracle"
    clairvoyant = True
    extra_params = {"windows": str, "risk_budget": float}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.windows = parse_windows(str(self.params.pop("windows", "1,4,16")))
        self.risk_budget = float(self.params.pop("risk_budget", 0.1))
        if not 0 <= self.risk_budget <= 1:
            raise InputError(
                "must be in [0, 1] (a fraction of the SLO's allowance of late requests)",
                field="policy.risk_budget",
                value=self.risk_budget,
            )
        self._schedule: Schedule | None = None
        self.last_schedule: Schedule | None = None

    def reset(self, scenario: Scenario, seed: int | None = None) -> None:
        super().reset(scenario, seed)
        self._schedule = None

    def _decide(self, state: ControlState) -> Plan:
        tr = lookahead_of(state, self.name)
        if self._schedule is None or not math.isclose(self._schedule.step_s, state.interval_s):
            sched = self._shared_schedule(state.scenario, tr, state.interval_s)
            self._schedule = self.last_schedule = sched
        plans = self._schedule.plans
        k = int(math.floor(state.time_s / self._schedule.step_s + 1e-9))
        return plans[min(max(k, 0), len(plans) - 1)]

    def _shared_schedule(self, scenario: Scenario, trace: Trace, step_s: float) -> Schedule:
        """:meth:`schedule`, memoized process-wide (:data:`_SHARED`) by the parameters, the
        whole scenario (model load times included: they decide which switches are safe), the
        trace and the step."""
        key = (
            repr((self.windows, self.risk_budget, sorted(self.params.items()))),
            hashlib.sha1(scenario.model_dump_json().encode()).hexdigest(),
            _trace_key(trace),
            repr(float(step_s)),
        )
        if key not in _SHARED:
            while len(_SHARED) >= _SHARED_LIMIT:
                del _SHARED[next(iter(_SHARED))]
            _SHARED[key] = self.schedule(scenario, trace, step_s)
        return _SHARED[key]

    def problem(self, scenario: Scenario, trace: Trace, step_s: float) -> SequenceProblem:
        """The candidates, step costs and switch check on ``trace`` in steps of ``step_s``."""
        self.cache.bind(scenario)
        steps = _steps(trace, step_s)
        cands, required = self._candidates(scenario, trace, steps)
        covers = [_CoverMemo(scenario, c, self.max_util) for c in cands]
        step_cost = [
            [_step_cost(scenario, trace, m, req, t) for m in covers]
            for req, t in zip(required, steps, strict=True)
        ]
        switch = SwitchCheck(scenario, trace, cands, required, steps, self.max_util)
        return SequenceProblem(cands, steps, step_cost, switch)

    def schedule(self, scenario: Scenario, trace: Trace, step_s: float) -> Schedule:
        """The cheapest plan sequence on ``trace`` in steps of ``step_s`` seconds whose
        switches put at most the risk budget at risk (module docstring)."""
        t0 = time.perf_counter()
        solves0 = self.cache.solves
        pb = self.problem(scenario, trace, step_s)
        t_problem = time.perf_counter() - t0
        requests = sum(sum(trace.mean_over(a, b).values()) * (b - a) for a, b in pb.steps)
        budget = self.risk_budget * (1.0 - scenario.slo.attainment) * requests
        for lam in RISK_PRICES:
            seq, _ = cheapest_sequence(pb.step_cost, pb.switch_cost(lam))
            risk = pb.switch_risk(seq)
            if risk <= budget:
                break
        changes = [k for k in range(1, len(seq)) if seq[k] != seq[k - 1]]
        sigs = pb.switch.sigs
        info = {
            "candidates": len(pb.candidates),
            "solves": self.cache.solves - solves0,
            "steps": len(pb.steps),
            "plan_changes": sum(sigs[seq[k]] != sigs[seq[k - 1]] for k in changes),
            "model_loads": sum(len(sigs[seq[k]] - sigs[seq[k - 1]]) for k in changes),
            "unsafe_switches": sum(pb.switch.penalty(k, seq[k - 1], seq[k]) > 0 for k in changes),
            "switch_risk": risk,
            "risk_budget": budget,
            "risk_price": lam,
            "uncovered_steps": sum(pb.step_cost[k][c][0] > 0 for k, c in enumerate(seq)),
            "predicted_dollars": pb.total(seq)[1],
            "switch_checks": pb.switch.checks,
            "problem_s": t_problem,
            "total_s": time.perf_counter() - t0,
        }
        return Schedule([pb.candidates[c] for c in seq], float(step_s), info)

    def _candidates(
        self, scenario: Scenario, trace: Trace, steps: list[tuple[float, float]]
    ) -> tuple[list[Plan], list[dict[str, float]]]:
        """Candidate plans (deduplicated, MILP-static's first) and every step's required
        rates: its true peak x (1 + headroom), capped at the total the trace's peak was
        planned at (when the infrastructure sustains less than the peak, the MILP plans for
        the largest multiple of it it sustains, as every planner policy does)."""
        found: dict[str, Plan] = {}

        def add(target: Mapping[str, float], current: Plan | None) -> tuple[Plan, dict]:
            res, at = self.cache.solve_clamped(self._target(target, scenario), current)
            if res is None:
                raise InfeasibleError(f"{self.name}: no plan for rates {dict(target)}")
            return found.setdefault(_plan_key(res.plan), res.plan), at

        _, at_peak = add(trace.peak(), None)
        top = sum(at_peak.values())
        required = []
        for t0, t1 in steps:
            want = self._target(trace.max_over(t0, t1), scenario)
            total = sum(want.values())
            required.append(scaled(want, min(1.0, top / total)) if total > 0 else want)
        n = len(steps)
        for h in self.windows:
            prev: Plan | None = None
            for k in range(0, n, (h + 1) // 2):  # windows overlap by half
                prev, _ = add(trace.max_over(steps[k][0], steps[min(k + h, n) - 1][1]), prev)
        return list(found.values()), required


class _CoverMemo:
    """Does one plan cover given rates? Coverage is monotone in the load (a plan that covers
    rates covers every rate vector below them; one that fails fails above), so most steps are
    answered from earlier answers without the latency model."""

    def __init__(self, scenario: Scenario, plan: Plan, max_util: float | None) -> None:
        self.scenario, self.plan, self.max_util = scenario, plan, max_util
        self.yes: list[np.ndarray] = []
        self.no: list[np.ndarray] = []
        self.keys = sorted(scenario.source_map)
        self.hourly = coverage(scenario, plan, design_rates(scenario, plan), 1.0).cost

    def covers(self, rates: Mapping[str, float]) -> bool:
        v = np.array([rates.get(k, 0.0) for k in self.keys])
        if any((v <= y + 1e-12).all() for y in self.yes):
            return True
        if any((v >= x - 1e-12).all() for x in self.no):
            return False
        # capacity first (cheap), then the latency model (or the utilisation cap)
        ok = (
            coverage(self.scenario, self.plan, rates, 1.0).covers
            and coverage(self.scenario, self.plan, rates, self.max_util).covers
        )
        (self.yes if ok else self.no).append(v)
        return ok


def _step_cost(
    scenario: Scenario,
    trace: Trace,
    memo: _CoverMemo,
    required: Mapping[str, float],
    step: tuple[float, float],
) -> Cost:
    """(requests at risk, $) of running a plan in ``step``: its cost at the step's mean rates
    (its cost at its design rates where it does not cover); at risk, every request of the step
    when it does not cover ``required``."""
    t0, t1 = step
    mean = trace.mean_over(t0, t1)
    hours = (t1 - t0) / 3600.0
    if memo.covers(required):
        return (0.0, coverage(scenario, memo.plan, mean, 1.0).cost * hours)
    return (sum(mean.values()) * (t1 - t0), memo.hourly * hours)


class SwitchCheck:
    """Is switching from candidate ``a`` to ``b`` at the start of step ``k`` safe? (memoized:
    the dynamic programme asks about the same pairs many times)."""

    def __init__(
        self,
        scenario: Scenario,
        trace: Trace,
        cands: list[Plan],
        required: list[dict[str, float]],
        steps: list[tuple[float, float]],
        max_util: float | None,
    ) -> None:
        self.scenario, self.trace, self.cands = scenario, trace, cands
        self.required, self.steps, self.max_util = required, steps, max_util
        self.sigs = [plan_signature(scenario, p) for p in cands]
        self._degraded: dict[tuple[int, int], tuple[Plan | None, float]] = {}
        self._covers: dict[tuple[int, int], _CoverMemo] = {}
        self._memo: dict[tuple[int, int, int], float] = {}
        self.checks = 0

    def degraded(self, a: int, b: int) -> tuple[Plan | None, float]:
        """Plan ``b`` without the workers that load a model when coming from ``a`` (None when
        nothing is left of an operator), and the longest of those load times (0: none)."""
        key = (a, b)
        if key not in self._degraded:
            loading = self.sigs[b] - self.sigs[a]
            if not loading:
                self._degraded[key] = (self.cands[b], 0.0)
            else:
                load_s = max(self.scenario.load_time(op, v, w) for w, op, v in loading)
                down = {(w, op) for w, op, _ in loading}
                self._degraded[key] = (_without(self.cands[b], down), load_s)
        return self._degraded[key]

    def penalty(self, k: int, a: int, b: int) -> float:
        """0 for a safe switch, else the requests that arrive during the load."""
        key = (k, a, b)
        if key in self._memo:
            return self._memo[key]
        plan, load_s = self.degraded(a, b)
        pen = 0.0
        if load_s > 0:
            t0, t1 = self.steps[k]
            window = self.trace.max_over(t0, t0 + load_s)
            req = self.required[k]
            peak = sum(self.trace.max_over(t0, t1).values())
            clamp = min(1.0, sum(req.values()) / peak) if peak > 0 else 1.0
            rates = scaled(window, clamp)
            self.checks += 1
            safe = False
            if plan is not None:  # (coverage says no where the plan cannot be rescaled)
                memo = self._covers.get((a, b))
                if memo is None:
                    memo = self._covers[(a, b)] = _CoverMemo(self.scenario, plan, self.max_util)
                safe = memo.covers(rates)
            if not safe:
                pen = sum(self.trace.mean_over(t0, t0 + load_s).values()) * load_s
        self._memo[key] = pen
        return pen


def _without(plan: Plan, down: set[tuple[str, str]]) -> Plan | None:
    """``plan`` without the (worker, operator) pairs in ``down``, routed in proportion (its
    explicit flows named the missing workers); None when an operator loses every worker."""
    shares: dict[str, list[WorkerShare]] = {}
    for op, ws in plan.worker_assignment.items():
        keep = [s for s in ws if (s.worker, op) not in down]
        if ws and not keep:
            return None
        shares[op] = keep
    return Plan(dict(plan.model_assignment), shares, None, dict(plan.meta))


def _steps(trace: Trace, step_s: float) -> list[tuple[float, float]]:
    """The control intervals over the trace (the last may be shorter; an endless trace ends
    one step after its last row, after which its rates stay constant)."""
    if not (step_s > 0 and math.isfinite(step_s)):
        raise InputError("must be > 0 seconds", field="interval", value=step_s)
    end = trace.duration
    if not math.isfinite(end):
        end = float(trace.times[-1]) + step_s if len(trace) else step_s
    edges = list(np.arange(0.0, end, step_s)) + [end]
    return [(float(a), float(b)) for a, b in zip(edges, edges[1:], strict=False) if b > a]


def _plan_key(plan: Plan) -> str:
    return plan.without_routing().to_json(None) + repr(plan.routing)


def _trace_key(trace: Trace) -> str:
    h = hashlib.sha1(trace.times.tobytes())
    h.update(trace.values.tobytes())
    h.update(repr((trace.columns, trace.duration)).encode())
    return h.hexdigest()


def parse_windows(text: str) -> tuple[int, ...]:
    """``"1,4,16"`` -> ``(1, 4, 16)`` (sorted, unique, each >= 1)."""
    try:
        out = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        out = []
    if not out or out[0] < 1:
        raise InputError(
            "must be window lengths in intervals, >= 1, comma-separated (e.g. 1,4,16)",
            field="policy.windows",
            value=text,
        )
    return tuple(out)
