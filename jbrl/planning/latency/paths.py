"""A plan's predicted end-to-end latency: per source -> sink path and per request.

:func:`predict_plan` resolves the plan at the given rates with the cost model (each worker's
rate, the flows on every edge), takes each worker's steady-state :class:`~jbrl.planning.latency.
sojourn.Sojourn` (:func:`~jbrl.planning.latency.sojourn.worker_sojourn` at its rate and batch
size, Poisson arrivals unless told otherwise), and combines them on a grid of times:

* **rates**: a worker serves its share of the operator's demand, the share being what the cost
  model gives it (explicit rates or the fill order), as the simulators route (weights, not fill
  order, whatever the load);
* **a stage** (operator v): a task's input is ready at the worker after its completion at the
  worker that sent it plus that link's transfer ``size / bandwidth + latency``: per input, the
  mixture over the worker's senders weighted by their flows into it, so the routing is followed
  as the DES follows it (a slow stage whose tasks go on to a fast worker makes a lighter tail
  than an operator-level mixture would); then the worker's sojourn adds (a discrete
  convolution, :func:`~jbrl.planning.latency.grid.cdf_of_sum`); the operator's completion time
  is the mixture over its workers by routing share;
* **a join** waits for the last of its inputs (product of their CDFs: independent inputs);
* **a path** source -> ... -> sink sums its stages (the same, without the other inputs of
  joins); its latency at the SLO percentile and P(latency <= bound) are reported per path;
* **a request** ends when all its tasks have: the product over sinks of the sink's completion
  CDF raised to its tasks per request ``c`` (``c > 1``: fan-out, the max of ``c`` tasks taken
  as independent; ``c < 1``: sampled, a request has a task there with probability ``c``).

What is approximated: arrivals at the sources are Poisson (``arrival_scv``); a worker's arrivals
have the SCV that Whitt's QNA gives them (its senders' departures, thinned by routing, merged by
flow: a busy near-deterministic stage smooths the next one's arrivals, as in the DES), weighed
against the stream's long-run variability (the sources' ``arrival_scv``) by the receiving
worker's utilisation (:func:`~jbrl.planning.latency.queueing.hybrid_scv`), entering its wait
through Kingman's factor ``(ca2 + cs2) / 2``, and spread as the M/G/1 wait's second moment
gives (:func:`~jbrl.planning.latency.queueing.wait_shape`, whatever the arrival SCV); only the
single input of an operator with one
in-edge of ratio 1 is followed this way, other workers' arrivals count as Poisson; a
batching worker fed by batching workers gets its tasks in groups
(:func:`~jbrl.planning.latency.feeders.feeder_groups`, with its own approximations); stages,
join inputs and the tasks of a fan-out are independent; a worker loaded beyond its stability
limit makes the prediction unstable (attainment 0, infinite latency), and so does an operator
with demand and no worker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jbrl.errors import InputError
from jbrl.planning.cost import RATE_TOL, CostReport, evaluate_plan
from jbrl.planning.latency.feeders import Feeder, feeder_groups
from jbrl.planning.latency.grid import cdf_of_sum
from jbrl.planning.latency.queueing import departure_scv, hybrid_scv, split_merge_scv
from jbrl.planning.latency.service import batch_service
from jbrl.planning.latency.sojourn import Sojourn, worker_sojourn
from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario

GRID_POINTS = 1024
"""Points of the time grid (its span covers the bound 1.5 times and every path's slow tail)."""

MAX_PATHS = 1000
"""Paths reported at most (a DAG can have exponentially many; the request-level figure counts
every path whatever this limit)."""


@dataclass(frozen=True)
class WorkerStage:
    """One worker of the plan: its operator, rate, share of the operator, batch size, sojourn
    and the mean transfer time into it per input (sender operator or source name)."""

    operator: str
    worker: str
    variant: str
    rate: float
    share: float
    batch: int
    sojourn: Sojourn
    transfer_s: dict[str, float]
    arrival_scv: float = 1.0
    service_scv: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        s = self.sojourn
        return {
            "operator": self.operator,
            "variant": self.variant,
            "rate": self.rate,
            "share": self.share,
            "batch": self.batch,
            "utilization": s.utilization,
            "stable": s.stable,
            "mean_sojourn_ms": _ms(s.mean_s),
            "arrival_scv": self.arrival_scv,
            "transfer_ms": {k: v * 1000.0 for k, v in self.transfer_s.items()},
        }


@dataclass(frozen=True)
class PathLatency:
    """One source -> sink path: its latency at the percentile, mean, and P(latency <= bound)
    (None without a bound)."""

    path: tuple[str, ...]
    latency_s: float
    mean_s: float
    attainment: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": list(self.path),
            "latency_ms": _ms(self.latency_s),
            "mean_ms": _ms(self.mean_s),
            "attainment": self.attainment,
        }


@dataclass(frozen=True)
class PlanLatency:
    """A plan's predicted latency (module docstring). ``percentile`` is the level latencies are
    reported at (the SLO's attainment target); ``attainment`` is P(request latency <= bound)
    (None without a bound); ``stable``: every worker has a steady state and every operator
    enough capacity."""

    bound_s: float | None
    percentile: float
    stable: bool
    latency_s: float
    mean_s: float
    attainment: float | None
    paths: list[PathLatency]
    workers: dict[str, WorkerStage]
    notes: list[str] = field(default_factory=list)

    @property
    def meets_target(self) -> bool:
        """The predicted attainment reaches the percentile (True without a bound)."""
        if self.attainment is None:
            return self.stable
        return self.attainment >= self.percentile - 1e-12

    def to_dict(self) -> dict[str, Any]:
        return {
            "bound_ms": _ms(self.bound_s) if self.bound_s is not None else None,
            "percentile": self.percentile,
            "stable": self.stable,
            "latency_ms": _ms(self.latency_s),
            "mean_ms": _ms(self.mean_s),
            "attainment": self.attainment,
            "meets_target": self.meets_target,
            "paths": [p.to_dict() for p in self.paths],
            "workers": {w: s.to_dict() for w, s in self.workers.items()},
            "notes": list(self.notes),
        }


def _ms(s: float) -> float | None:
    return s * 1000.0 if math.isfinite(s) else None


def predict_plan(
    scenario: Scenario,
    plan: Plan,
    rates: Mapping[str, float] | None = None,
    *,
    family: str = "lognormal",
    batch_timeout_s: float | None = None,
    arrival_scv: float = 1.0,
    percentile: float | None = None,
    bound_s: float | None = None,
    grid_points: int = GRID_POINTS,
) -> PlanLatency:
    """The predicted latency of ``plan`` at source ``rates`` (nominal by default; see the
    module docstring). ``percentile`` defaults to the SLO's attainment target and ``bound_s`` to
    its latency bound; ``batch_timeout_s`` to the scenario's batch wait timeout. Raises
    :class:`~jbrl.errors.InputError` for a plan that does not fit the scenario."""
    rep = evaluate_plan(scenario, plan, rates, accuracy_target=-math.inf)
    bad = [v.message for v in rep.violations if v.invalid or v.kind == "worker_reused"]
    if bad:
        raise InputError("the plan does not fit the scenario: " + "; ".join(bad), field="plan")
    q = scenario.slo.attainment if percentile is None else percentile
    bound = _bound(scenario) if bound_s is None else bound_s
    timeout = _batch_timeout(scenario) if batch_timeout_s is None else batch_timeout_s
    notes: list[str] = []
    stages = _stages(scenario, plan, rep, family, timeout, arrival_scv, notes)
    stable = not notes and all(st.sojourn.stable for st in stages.values())
    if not stable:
        notes += [
            f"{w}: {st.operator} at {st.rate:.4g} req/s is beyond its stability limit "
            f"(utilisation {st.sojourn.utilization:.3f})"
            for w, st in stages.items()
            if not st.sojourn.stable
        ]
        paths = [
            PathLatency(p, math.inf, math.inf, 0.0 if bound else None) for p in _paths(scenario)
        ]
        return PlanLatency(bound, q, False, math.inf, math.inf, 0.0 if bound else None, paths,
                           stages, notes)  # fmt: skip
    grid = _Grid(scenario, stages, bound, grid_points)
    by_op = _by_operator(scenario, stages)
    inflows = _inflows(scenario, rep)
    completion = _completions(scenario, by_op, inflows, grid)
    request = _request_cdf(scenario, rep, completion)
    paths = [
        _path_latency(p, _path_cdf(p, by_op, inflows, grid), grid, q, bound)
        for p in _paths(scenario)[:MAX_PATHS]
    ]
    if len(_paths(scenario)) > MAX_PATHS:
        notes.append(f"only the first {MAX_PATHS} paths are listed")
    return PlanLatency(
        bound_s=bound,
        percentile=q,
        stable=True,
        latency_s=grid.quantile(request, q),
        mean_s=grid.mean(request),
        attainment=grid.at(request, bound) if bound else None,
        paths=paths,
        workers=stages,
        notes=notes,
    )


def _bound(scenario: Scenario) -> float | None:
    ms = getattr(scenario.slo, "latency_ms", None)
    return ms / 1000.0 if ms else None


def _batch_timeout(scenario: Scenario) -> float:
    return scenario.batch_wait_timeout_s


# ---------------------------------------------------------------------- stages


def _stages(
    scenario: Scenario,
    plan: Plan,
    rep: CostReport,
    family: str,
    timeout: float,
    ca2: float,
    notes: list[str],
) -> dict[str, WorkerStage]:
    """Every worker with traffic: its sojourn at its rate and the transfer into it per input."""
    out: dict[str, WorkerStage] = {}
    for op in scenario.topo_order:
        load = rep.operators[op]
        if load.demand > 0 and load.served <= 0:
            notes.append(f"{op}: no worker serves its {load.demand:.4g} req/s")
        for wl in load.workers:
            if wl.rate <= RATE_TOL:
                continue
            b = wl.batch
            svc = batch_service(scenario, op, load.variant, wl.worker, family)
            share = wl.rate / load.served
            rate = share * load.demand
            groups: tuple[float, ...] | None = None
            if b == 1:
                qna = _arrival_scv(scenario, rep, op, wl.worker, out, ca2)
                scv = hybrid_scv(rate * svc.fit(1).mean_s, qna, ca2)
            else:
                feeders = _feeders(scenario, rep, op, wl.worker, out, family)
                groups, scv = feeder_groups(feeders, rate, timeout)
            out[wl.worker] = WorkerStage(
                operator=op,
                worker=wl.worker,
                variant=load.variant,
                rate=rate,
                share=share,
                batch=b,
                sojourn=worker_sojourn(svc, rate, b, timeout, scv, groups),
                transfer_s=_transfers_into(scenario, rep, op, wl.worker),
                arrival_scv=scv,
                service_scv=svc.fit(b).scv,
            )
    return out


def _arrival_scv(
    scenario: Scenario,
    rep: CostReport,
    op: str,
    worker: str,
    stages: dict[str, WorkerStage],
    ca2: float,
) -> float:
    """The SCV of a worker's arrivals (QNA, as the fluid simulator follows them): on ``op``'s
    only input, an edge of ratio 1, each sending worker's departures
    (:func:`~jbrl.planning.latency.queueing.departure_scv` at its utilisation, batch 1;
    a batching sender's count as Poisson, as in the fluid model), thinned by the fraction of
    its tasks it routes here and merged by flow
    (:func:`~jbrl.planning.latency.queueing.split_merge_scv`); sources send ``ca2``. ``ca2``
    where that is not followed: joins (a task starts when its last input is there) and edges
    of another ratio (fan-out and sampling)."""
    edges = scenario.in_edges[op]
    if len(edges) != 1 or edges[0].ratio != 1.0:
        return ca2
    e = edges[0]
    parts: list[tuple[float, float, float]] = []
    for f in rep.flows:
        if f.edge != (e.source, op) or f.receiver != worker or f.rate <= 0:
            continue
        st = stages.get(f.sender)
        if st is None:  # a source
            parts.append((f.rate, 1.0, ca2))
        elif st.batch > 1 or st.rate <= 0:
            parts.append((f.rate, 1.0, 1.0))
        else:
            cd2 = departure_scv(st.sojourn.utilization, st.service_scv, st.arrival_scv)
            parts.append((f.rate, min(f.rate / st.rate, 1.0), cd2))
    return split_merge_scv(parts) if parts else ca2


def _feeders(
    scenario: Scenario,
    rep: CostReport,
    op: str,
    worker: str,
    stages: dict[str, WorkerStage],
    family: str,
) -> list[Feeder]:
    """The batching senders of ``worker`` on ``op``'s primary input (an edge of ratio 1): the
    share of the worker's tasks each sends and the fraction of its own it sends here."""
    edges = scenario.in_edges[op]
    if not edges or edges[0].ratio != 1.0:
        return []
    e = edges[0]
    flows = [
        f for f in rep.flows if f.edge == (e.source, op) and f.receiver == worker and f.rate > 0
    ]
    total = sum(f.rate for f in flows)
    out: list[Feeder] = []
    for f in flows:
        st = stages.get(f.sender)
        if st is None or st.batch <= 1 or st.rate <= 0:
            continue
        svc = batch_service(scenario, st.operator, st.variant, st.worker, family)
        out.append(Feeder(f.rate / total, min(f.rate / st.rate, 1.0), svc, st.batch))
    return out


def _transfers_into(scenario: Scenario, rep: CostReport, op: str, worker: str) -> dict[str, float]:
    """Per input of ``op``: the mean transfer time into ``worker``, weighted by its senders'
    flows (0 where it receives nothing on that input)."""
    out: dict[str, float] = {}
    for e in scenario.in_edges[op]:
        kb = e.message_kb_for(
            rep.operators[e.source].variant if e.source in rep.operators else "default"
        )
        num = den = 0.0
        for f in rep.flows:
            if f.edge == (e.source, op) and f.receiver == worker and f.rate > 0:
                num += f.rate * scenario.link(f.sender, worker).transfer_s(kb)
                den += f.rate
        out[e.source] = num / den if den > 0 else 0.0
    return out


def _by_operator(
    scenario: Scenario, stages: dict[str, WorkerStage]
) -> dict[str, list[WorkerStage]]:
    out: dict[str, list[WorkerStage]] = {op: [] for op in scenario.topo_order}
    for st in stages.values():
        out[st.operator].append(st)
    return out


# ---------------------------------------------------------------------- the grid


class _Grid:
    """Equally spaced times from 0 covering 1.5 x the bound and every path's slow tail (the sum
    along the path of each stage's slowest worker's 1e-4 tail point, plus transfers)."""

    def __init__(
        self, scenario: Scenario, stages: dict[str, WorkerStage], bound: float | None, n: int
    ) -> None:
        slow: dict[str, float] = {}
        for op in scenario.topo_order:
            here = max(
                (_tail_point(st) for st in stages.values() if st.operator == op), default=0.0
            )
            prev = max((slow.get(e.source, 0.0) for e in scenario.in_edges[op]), default=0.0)
            slow[op] = prev + here
        span = max(1.5 * (bound or 0.0), max(slow.values(), default=0.0), 1e-3)
        self.n = n
        self.h = span / (n - 1)
        self.t = np.arange(n) * self.h
        self._soj: dict[str, np.ndarray] = {}
        self._stages = stages

    def sojourn(self, worker: str) -> np.ndarray:
        """The worker's sojourn CDF on the grid (cached)."""
        c = self._soj.get(worker)
        if c is None:
            c = self._soj[worker] = self._stages[worker].sojourn.cdf_on_grid(self.t)
        return c

    def shift(self, cdf: np.ndarray, by: float) -> np.ndarray:
        """The CDF of X + ``by`` from X's CDF."""
        if by <= 0:
            return cdf
        return np.interp(self.t - by, self.t, cdf, left=0.0)

    def at(self, cdf: np.ndarray, t: float) -> float:
        return float(np.interp(t, self.t, cdf))

    def quantile(self, cdf: np.ndarray, q: float) -> float:
        """The least grid time with CDF >= q (linear between points); inf beyond the grid."""
        cdf = np.maximum.accumulate(cdf)
        i = int(np.searchsorted(cdf, q))
        if i >= self.n:
            return math.inf
        if i == 0:
            return 0.0
        c0, c1 = float(cdf[i - 1]), float(cdf[i])
        return float(self.t[i - 1] + self.h * ((q - c0) / (c1 - c0) if c1 > c0 else 1.0))

    def mean(self, cdf: np.ndarray) -> float:
        """E[X] from its CDF on the grid; inf when mass lies beyond the grid."""
        if cdf[-1] < 1.0 - 1e-4:
            return math.inf
        return float(self.h * (1.0 - cdf[:-1]).sum())


def _tail_point(st: WorkerStage) -> float:
    """A time beyond which the worker's sojourn has at most ~1e-4 of its mass, plus its
    largest input transfer."""
    return st.sojourn.upper_s() + max(st.transfer_s.values(), default=0.0)


# ---------------------------------------------------------------------- combining

Inflows = dict[tuple[str, str], list[tuple[str, float, float]]]
"""Per (input operator or source, receiving worker): its senders as (sender, requests/s,
transfer time), from the plan's flows."""


def _inflows(scenario: Scenario, rep: CostReport) -> Inflows:
    """Every worker's senders per input, with the transfer time of each (sender, receiver)."""
    kb: dict[tuple[str, str], float] = {}
    out: Inflows = {}
    for f in rep.flows:
        if f.rate <= 0:
            continue
        size = kb.get(f.edge)
        if size is None:
            e = next(x for x in scenario.in_edges[f.edge[1]] if x.source == f.edge[0])
            v = rep.operators[e.source].variant if e.source in rep.operators else "default"
            size = kb[f.edge] = e.message_kb_for(v)
        tau = scenario.link(f.sender, f.receiver).transfer_s(size)
        out.setdefault((f.edge[0], f.receiver), []).append((f.sender, f.rate, tau))
    return out


class _Combiner:
    """Completion-time CDFs along the DAG that follow the plan's routing (module docstring).

    A worker's inputs are ready after the completion at the worker that sent them plus that
    sender's transfer: per input, the mixture over its senders weighted by their flows into this
    worker. Routing that sends a slow stage's tasks on to a fast worker (and a fast stage's to a
    slow one) thus gives a lighter tail than an operator-level mixture would, as in the DES.
    ``inputs(op)`` names the inputs followed (all of them for the request, the path's own for a
    path); a sender without a stage (a source) completes at time 0.
    """

    def __init__(
        self,
        by_op: dict[str, list[WorkerStage]],
        inflows: Inflows,
        grid: _Grid,
        inputs: Any,
    ) -> None:
        self.by_op = by_op
        self.stage = {st.worker: st for sts in by_op.values() for st in sts}
        self.inflows = inflows
        self.grid = grid
        self.inputs = inputs
        self.start = np.ones(grid.n)
        self.done_op: dict[str, np.ndarray] = {}
        self._done_w: dict[str, np.ndarray] = {}
        self._ready: dict[tuple, np.ndarray] = {}

    def op(self, op: str) -> np.ndarray:
        """P(a task of ``op`` completes by t), the mixture over its workers by share; workers
        whose inputs are ready at the same time share one convolution."""
        got = self.done_op.get(op)
        if got is not None:
            return got
        groups: dict[tuple, np.ndarray] = {}
        for st in self.by_op[op]:
            key = self._key(st)
            soj = self.grid.sojourn(st.worker) * st.share
            groups[key] = groups[key] + soj if key in groups else soj
        out = np.zeros(self.grid.n)
        for key, acc in groups.items():
            out += cdf_of_sum(self._ready_of(key), acc)
        self.done_op[op] = out
        return out

    def worker(self, w: str) -> np.ndarray:
        """P(a task at worker ``w`` completes by t), from the request's arrival."""
        got = self._done_w.get(w)
        if got is None:
            st = self.stage[w]
            got = self._done_w[w] = cdf_of_sum(self._ready_of(self._key(st)),
                                               self.grid.sojourn(w))  # fmt: skip
        return got

    def _key(self, st: WorkerStage) -> tuple:
        """What ``st``'s ready time depends on: per followed input, (sender, weight, transfer)
        - or, where the senders' weights are their own operator's shares and their transfers
        equal, the sender operator's mixture and that transfer."""
        h = self.grid.h
        parts = []
        for u in self.inputs(st.operator):
            senders = self.inflows.get((u, st.worker))
            if not senders:
                parts.append((u, None, 0.0))
                continue
            total = sum(r for _, r, _ in senders)
            taus = {round(t / h, 3) for _, _, t in senders}
            ups = [self.stage.get(s) for s, _, _ in senders]
            if len(taus) == 1 and (
                all(x is None for x in ups)
                or (
                    all(x is not None for x in ups)
                    and sum(x.share for x in ups if x is not None) > 1.0 - 1e-9
                    and all(
                        x is not None and abs(r / total - x.share) < 1e-9
                        for x, (_, r, _) in zip(ups, senders, strict=True)
                    )
                )
            ):
                parts.append((u, None, senders[0][2]))
            else:
                parts.append(
                    (
                        u,
                        tuple(
                            sorted(
                                (s, round(r / total, 12), round(t / h, 3)) for s, r, t in senders
                            )
                        ),
                        0.0,
                    )  # fmt: skip
                )
        return tuple(parts)

    def _ready_of(self, key: tuple) -> np.ndarray:
        got = self._ready.get(key)
        if got is not None:
            return got
        grid = self.grid
        r = np.ones(grid.n)
        for u, senders, tau in key:
            if senders is None:
                r = r * grid.shift(self._op_or_start(u), tau)
                continue
            mix = np.zeros(grid.n)
            for s, weight, steps in senders:
                done = self.worker(s) if s in self.stage else self._op_or_start(u)
                mix += weight * grid.shift(done, steps * grid.h)
            r = r * mix
        self._ready[key] = r
        return r

    def _op_or_start(self, u: str) -> np.ndarray:
        return self.op(u) if self.by_op.get(u) else self.start


def _completions(
    scenario: Scenario, by_op: dict[str, list[WorkerStage]], inflows: Inflows, grid: _Grid
) -> dict[str, np.ndarray]:
    """Per operator, the CDF of a task's completion time from the request's arrival."""
    comb = _Combiner(by_op, inflows, grid, lambda op: [e.source for e in scenario.in_edges[op]])
    return {op: comb.op(op) if by_op[op] else comb.start for op in scenario.topo_order}


def _request_cdf(
    scenario: Scenario, rep: CostReport, completion: dict[str, np.ndarray]
) -> np.ndarray:
    """P(request latency <= t): over sinks, completion CDF ** tasks per request (docstring)."""
    top = max(rep.rates.values(), default=0.0)
    demand = scenario.demand(rep.rates)
    out = np.ones(len(next(iter(completion.values()))))
    for sink in scenario.sinks:
        c = demand[sink] / top if top > 0 else 1.0
        out = out * completion[sink] ** c
    return out


def _paths(scenario: Scenario) -> list[tuple[str, ...]]:
    """Every source -> sink path, sources in scenario order."""
    out: list[tuple[str, ...]] = []

    def walk(path: tuple[str, ...]) -> None:
        if len(out) > MAX_PATHS:
            return
        nxt = scenario.out_edges.get(path[-1], [])
        if not nxt and len(path) > 1:
            out.append(path)
        for e in nxt:
            walk((*path, e.target))

    for s in scenario.sources:
        walk((s.name,))
    return out


def _path_cdf(
    path: tuple[str, ...], by_op: dict[str, list[WorkerStage]], inflows: Inflows, grid: _Grid
) -> np.ndarray:
    """The CDF of the sum of the path's stages (its own inputs only)."""
    prev = dict(zip(path[1:], path, strict=False))
    comb = _Combiner(by_op, inflows, grid, lambda op: [prev[op]] if op in prev else [])
    last = next((op for op in reversed(path[1:]) if by_op[op]), None)
    return comb.op(last) if last is not None else comb.start


def _path_latency(
    path: tuple[str, ...], cdf: np.ndarray, grid: _Grid, q: float, bound: float | None
) -> PathLatency:
    return PathLatency(
        path=path,
        latency_s=grid.quantile(cdf, q),
        mean_s=grid.mean(cdf),
        attainment=grid.at(cdf, bound) if bound else None,
    )
