"""The latency side of the SLO-aware MILP: stage budgets, SLO-safe capacities, network times.

Where the scenario has a latency bound ``L`` (``slo.latency_ms``) and attainment target ``a``,
the MILP plans with a **per-stage model** that keeps it linear:

* every operator ``o`` gets a **stage budget** ``B_o``, chosen by the MILP among a few discrete
  levels (:func:`stage_levels`); the budget covers the transfer of the task's inputs into the
  worker and the worker's sojourn (queue wait + batch formation + service);
* along every source -> sink path the budgets add up to at most ``L`` (arrival-time columns
  ``T_o >= T_u + B_o`` for every edge ``u -> o``, ``T_o <= L``: a join waits for its slowest
  input, exactly as the path constraints require, without enumerating paths);
* a worker of group ``g`` serving ``(o, variant, batch b)`` at level ``l`` may carry at most its
  **SLO-safe rate**: the largest rate at which its sojourn exceeds ``B_l - net_in(g, o)`` with
  probability at most the stage tail ``eps`` (:func:`jbrl.planning.latency.slo_safe_rate`),
  and never more than its capacity (``b x 1000 / p90_b``, what the cost model checks);
* ``net_in(g, o)``: the slowest transfer into a worker of ``g`` on any input edge of ``o``
  (size / bandwidth + one-way latency, from the sender group or source tier that may send to
  it): transfer times depend on where operators are placed, and this bounds them per receiver.

The stage tail is ``eps = theta (1 - a) / N`` with ``N`` the tasks per request summed over the
operators. At ``theta = 1`` the union bound makes the per-stage model *safe*: a request misses
the bound only if one of its tasks misses its stage budget, which happens with probability at
most ``N eps = 1 - a``. The union bound pads (stage tails rarely coincide and a sum of stages
rarely has every stage at its budget), so the planner loosens ``theta`` while the end-to-end
predictor (:func:`jbrl.planning.latency.predict_plan`, which convolves the stages along the
DAG) still confirms the target (:mod:`jbrl.planning.milp.calibrate`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from jbrl.planning.groups import WorkerGroup
from jbrl.planning.latency import BatchService, batch_service, worker_sojourn
from jbrl.scenario.model import Scenario

DEFAULT_LEVELS = 16
"""Budget levels per operator at most (:func:`stage_levels`)."""
LEVEL_RATIO = 1.25
"""Ratio of adjacent budget levels (:func:`stage_levels`)."""

Key = tuple[int, str, str, int]
"""(group index, operator, variant, batch size)."""


@dataclass(frozen=True)
class SloTarget:
    """The latency target a plan is made for: bound (s), attainment, stage tail ``eps``."""

    bound_s: float
    attainment: float
    tail: float
    theta: float
    tasks_per_request: float
    level_tail: float
    """The stage tail at ``theta = 1``: the budget levels are laid out for it, whatever
    ``theta`` (so that every rung of the calibration shares them)."""

    @classmethod
    def of(cls, scenario: Scenario, demand: Mapping[str, float], theta: float) -> SloTarget | None:
        """The target of ``scenario`` at ``demand`` and looseness ``theta`` (None: no bound)."""
        bound = scenario.slo.bound_s
        if bound is None:
            return None
        n = tasks_per_request(scenario, demand)
        miss = 1.0 - scenario.slo.attainment
        tail = min(0.5, theta * miss / n) if n > 0 else 0.5
        safe = min(0.5, miss / n) if n > 0 else 0.5
        return cls(bound, scenario.slo.attainment, tail, theta, n, safe)


def tasks_per_request(scenario: Scenario, demand: Mapping[str, float]) -> float:
    """Tasks a request spawns, summed over the operators (``demand(o) / request rate``; a
    request is one arrival of the workflow, at the largest source rate)."""
    req = max((demand[s.name] for s in scenario.sources), default=0.0)
    if req <= 0:  # (no load: the ratios of a unit load)
        demand = scenario.demand(dict.fromkeys(scenario.source_map, 1.0))
        req = 1.0
    return sum(demand[o] for o in scenario.topo_order) / req


# --------------------------------------------------------------------------- network


def inbound_transfer(
    scenario: Scenario,
    groups: Sequence[WorkerGroup],
    allowed: np.ndarray,
    variants: Mapping[str, list[str]],
) -> dict[tuple[int, str], float]:
    """``net_in(g, o)`` (s): the slowest transfer into a worker of ``g`` over any input edge of
    ``o``, from the source, or from any group that may send to ``g`` (largest message of the
    sender's variants)."""
    out: dict[tuple[int, str], float] = {}
    for g in groups:
        for o in scenario.topo_order:
            worst = 0.0
            for e in scenario.in_edges[o]:
                if e.source in scenario.source_map:
                    kb = e.message_kb_for("default")
                    worst = max(worst, _transfer(scenario, e.source, g.rep, kb))
                    continue
                kb = max((e.message_kb_for(v) for v in variants[e.source]), default=0.0)
                for h in groups:
                    if allowed[h.index, g.index]:
                        receiver = g.rep if h.index != g.index else g.peer
                        worst = max(worst, _transfer(scenario, h.rep, receiver, kb))
            out[(g.index, o)] = worst
    return out


def _transfer(scenario: Scenario, sender: str, receiver: str, kb: float) -> float:
    """Seconds to send ``kb`` KB: size / bandwidth + one-way latency (0 on the same worker)."""
    if sender == receiver:
        return 0.0
    info = scenario.link(sender, receiver)
    return kb / (1024.0 * info.bandwidth_mb_s) + info.latency_ms / 1000.0


# --------------------------------------------------------------------------- levels


def stage_levels(
    scenario: Scenario, least: Mapping[str, float], bound_s: float, count: int
) -> dict[str, list[float]]:
    """Budget levels (s) per operator between its least useful budget ``least[o]`` (an idle
    worker's tail plus the transfer into it) and the most the bound leaves it once every other
    operator on its longest path has its least budget; empty when that is below the least.

    Levels are geometric from both ends: a fast stage needs a little more than its service
    time (levels ``least x ratio^k`` up to the middle of the range), and the dominant stage of
    a path takes what the fast ones leave (levels ``most - least x (ratio^k - 1)`` down to the
    middle). Steps of equal ratio suit a worker's SLO-safe utilisation ``r``, which follows
    ``1 - r ~ m / budget`` (the wait's tail scale ``E = k m / (1 - r)`` must fit the budget a
    fixed number of times). ``count`` levels at most, half from each end, with the ratio that
    covers the range (:data:`LEVEL_RATIO` at least).
    """
    head: dict[str, float] = {}
    for o in scenario.topo_order:
        before = [head[e.source] for e in scenario.in_edges[o] if e.source in head]
        head[o] = least[o] + max(before, default=0.0)
    tail: dict[str, float] = {}
    for o in reversed(scenario.topo_order):
        after = [tail[e.target] for e in scenario.out_edges[o]]
        tail[o] = least[o] + max(after, default=0.0)
    out: dict[str, list[float]] = {}
    for o in scenario.topo_order:
        lo = least[o]
        hi = bound_s - (head[o] + tail[o] - 2.0 * lo)
        if not (math.isfinite(lo) and hi >= lo * (1 - 1e-9)):
            out[o] = []
            continue
        mid = 0.5 * (lo + hi)
        half = max(1, count // 2)
        ratio = max(LEVEL_RATIO, (mid / lo) ** (1.0 / half)) if lo > 0 else LEVEL_RATIO
        steps = lo * ratio ** np.arange(half)
        up = [b for b in steps if b < mid]
        down = [hi - (b - lo) for b in steps if hi - (b - lo) >= mid]
        out[o] = sorted({round(float(b), 9) for b in up + down})
    return out


# --------------------------------------------------------------------------- latency calls

SAFE_RATE_GRID = 48
"""Rates per worker key at which the sojourn's tail is evaluated for every budget at once
(:func:`safe_rates`), spaced evenly in ``log(1 - utilisation)`` from 1e-3 to 0.999."""
SAFE_RATE_GRID_BATCHED = 12
"""The same for a batch size above 1, whose sojourn (the bulk queue's chain and the tagged
task's grid) costs 20-300 ms instead of microseconds: a coarser grid, and each budget's rate is
the last grid rate that meets it (no interpolation probe): a low rate, never a high one."""


def worker_service(
    scenario: Scenario, operator: str, variant: str, worker: str, family: str
) -> BatchService | None:
    """The service-time fits of (operator, variant) on ``worker`` per batch size (None without
    a profile)."""
    try:
        return batch_service(scenario, operator, variant, worker, family)
    except KeyError:
        return None


def batch_sizes(
    scenario: Scenario, operator: str, variant: str, worker: str, max_batch: int | None = None
) -> tuple[int, ...]:
    """The batch sizes a worker may run (operator, variant) with: the profiled ones (up to
    ``max_batch``)."""
    service = worker_service(scenario, operator, variant, worker, "lognormal")
    if service is None:
        return ()
    return tuple(b for b in service.sizes if max_batch is None or b <= max_batch)


def batch_capacity(
    scenario: Scenario, operator: str, variant: str, worker: str, batch: int
) -> float:
    """Requests/s a worker sustains for (operator, variant) at ``batch`` (the cost model's
    capacity: ``batch * 1000 /`` planning latency of a full batch)."""
    return scenario.capacity(operator, variant, worker, batch)


def batch_timeout(scenario: Scenario) -> float:
    """Seconds a worker waits for a batch to fill (the scenario's setting)."""
    return scenario.batch_wait_timeout_s


def least_budget(service: BatchService, tail: float, batch: int, timeout: float) -> float:
    """The least stage budget (s) an idle worker meets with probability ``1 - tail``: its
    sojourn's ``1 - tail`` quantile at a vanishing load."""
    return worker_sojourn(service, 0.0, batch, timeout).quantile(1.0 - tail)


@functools.lru_cache(maxsize=8192)
def tail_table(
    service: BatchService, budgets: tuple[float, ...], batch: int, timeout: float
) -> tuple[np.ndarray, np.ndarray]:
    """(rates, P(sojourn > budget) per rate and budget) on the rate grid of
    :data:`SAFE_RATE_GRID` (independent of the tail target, so every rung of the calibration
    reuses it)."""
    t = np.asarray(budgets, dtype=float)
    cap = service.max_throughput(batch)
    points = SAFE_RATE_GRID if batch == 1 else SAFE_RATE_GRID_BATCHED
    rates = cap * (1.0 - np.geomspace(0.999, 1e-3, points))
    surv = np.array([1.0 - worker_sojourn(service, lam, batch, timeout).cdf(t) for lam in rates])
    return rates, surv


def safe_rates(
    service: BatchService, budgets: tuple[float, ...], tail: float, batch: int, timeout: float
) -> tuple[float, ...]:
    """The SLO-safe rate (:func:`jbrl.planning.latency.slo_safe_rate`: the largest rate at which
    P(sojourn > budget) <= tail holds there and at every lower rate) for each of ``budgets``.

    One evaluation of the sojourn per rate of a fixed grid serves every budget
    (:func:`tail_table`): the rate of each budget is the last grid rate that meets it, then
    linear interpolation of the tail towards the first rate that misses, kept only when it
    meets the budget itself (else the grid rate: a slightly low rate, never a high one); for a
    batch size above 1 the grid rate (:data:`SAFE_RATE_GRID_BATCHED`).
    """
    rates, surv = tail_table(service, budgets, batch, timeout)
    out = []
    for j, budget in enumerate(budgets):
        miss = np.nonzero(surv[:, j] > tail)[0]
        last = int(miss[0]) - 1 if len(miss) else len(rates) - 1
        if last < 0:
            out.append(0.0)
            continue
        lam = float(rates[last])
        if last + 1 < len(rates) and batch == 1:
            s0, s1 = surv[last, j], surv[last + 1, j]
            guess = lam + (rates[last + 1] - lam) * (tail - s0) / max(s1 - s0, 1e-300)
            if worker_sojourn(service, float(guess), batch, timeout).survival(budget) <= tail:
                lam = float(guess)
        out.append(lam)
    return tuple(out)


# --------------------------------------------------------------------------- the layout


@dataclass
class StageLayout:
    """What the SLO-aware model adds to a layout: budget levels per operator and every
    worker key's SLO-safe rate per level (0 where the level is too tight)."""

    target: SloTarget
    levels: dict[str, list[float]]
    level_caps: dict[Key, list[float]]
    net_in: dict[tuple[int, str], float]


def stage_layout(
    scenario: Scenario,
    groups: Sequence[WorkerGroup],
    allowed: np.ndarray,
    variants: Mapping[str, list[str]],
    caps: Mapping[Key, float],
    target: SloTarget,
    count: int,
    family: str,
) -> StageLayout:
    """Levels and per-level SLO-safe rates of every key of ``caps`` (each capped by ``caps``)."""
    net_in = inbound_transfer(scenario, groups, allowed, variants)
    timeout = batch_timeout(scenario)
    services: dict[Key, BatchService] = {}
    least: dict[str, float] = dict.fromkeys(scenario.topo_order, math.inf)
    for key in caps:
        gi, o, v, b = key
        service = worker_service(scenario, o, v, groups[gi].rep, family)
        if service is None:
            continue
        services[key] = service
        need = net_in[(gi, o)] + least_budget(service, target.level_tail, b, timeout)
        least[o] = min(least[o], need)
    levels = stage_levels(scenario, least, target.bound_s, count)
    level_caps: dict[Key, list[float]] = {}
    for key, service in services.items():
        gi, o, _v, b = key
        net = net_in[(gi, o)]
        room = tuple(round(budget - net, 9) for budget in levels[o])
        usable = tuple(r for r in room if r > 0)
        rates = dict(zip(usable, safe_rates(service, usable, target.tail, b, timeout), strict=True))
        level_caps[key] = [min(caps[key], rates.get(r, 0.0)) for r in room]
    return StageLayout(target, levels, level_caps, net_in)
