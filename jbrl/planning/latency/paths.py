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
against the stream's long-run variability (the sources' ``arrival_scv``) by the sender's and the
receiver's utilisations (:func:`~jbrl.planning.latency.queueing.sender_weight`), for a worker
fed by one dedicated near-deterministic sender as Friedman's tandem reduction says
(:func:`~jbrl.planning.latency.queueing.tandem_scv`), entering its wait
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
from jbrl.planning.latency.combine import (
    Grid,
    Inflows,
    completions,
    inflows_of,
    path_cdf,
)
from jbrl.planning.latency.feeders import Feeder, feeder_groups
from jbrl.planning.latency.queueing import (
    departure_scv,
    hybrid_scv,
    sender_weight,
    spacing_jitter_scv,
    split_merge_scv,
    tandem_scv,
)
from jbrl.planning.latency.service import batch_service
from jbrl.planning.latency.sojourn import MixtureSojourn, Sojourn, worker_sojourn
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
    inflows = inflows_of(scenario, rep)
    stages = _stages(scenario, plan, rep, inflows, family, timeout, arrival_scv, q, notes)
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
    grid = Grid(scenario, stages, bound, grid_points)
    by_op = _by_operator(scenario, stages)
    completion = completions(scenario, by_op, inflows, grid)
    request = _request_cdf(scenario, rep, completion)
    paths = [
        _path_latency(p, path_cdf(p, by_op, inflows, grid), grid, q, bound)
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
    inflows: Inflows,
    family: str,
    timeout: float,
    ca2: float,
    q: float,
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
                fit = svc.fit(1)
                me = (rate * fit.mean_s, fit.scv, fit.a3, fit.mean_s)
                scv = _arrival_scv(scenario, inflows, op, wl.worker, out, ca2, me, q)
            else:
                feeders = _feeders(scenario, inflows, op, wl.worker, out, family)
                groups, scv = feeder_groups(feeders, rate, timeout)
            out[wl.worker] = WorkerStage(
                operator=op,
                worker=wl.worker,
                variant=load.variant,
                rate=rate,
                share=share,
                batch=b,
                sojourn=worker_sojourn(svc, rate, b, timeout, scv, groups),
                transfer_s=_transfers_into(scenario, inflows, op, wl.worker),
                arrival_scv=scv,
                service_scv=svc.fit(b).scv,
            )
    return out


def _arrival_scv(
    scenario: Scenario,
    inflows: Inflows,
    op: str,
    worker: str,
    stages: dict[str, WorkerStage],
    ca2: float,
    me: tuple[float, float, float, float],
    q: float,
) -> float:
    """The SCV a worker at ``me = (utilisation, service SCV, a3, mean service)`` effectively sees
    in its arrivals, on ``op``'s only input (an edge of ratio 1). Per sending worker (batch 1):
    its departures' SCV (QNA, :func:`~jbrl.planning.latency.queueing.departure_scv`) weighed
    against the stream's long-run variability ``ca2`` as both queues' time scales say
    (:func:`~jbrl.planning.latency.queueing.sender_weight`,
    :func:`~jbrl.planning.latency.queueing.hybrid_scv`). For a dedicated pair (one sender that
    sends all its tasks here) lowered to what the pair's deterministic tandem gives at
    percentile ``q`` (Friedman: :func:`~jbrl.planning.latency.queueing.tandem_scv`), but not
    below what the services' jitter alone makes the worker wait
    (:func:`~jbrl.planning.latency.queueing.spacing_jitter_scv`: Friedman holds for fixed service
    times). Then thinned by the fraction of its tasks each sender routes here and merged by
    flow (:func:`~jbrl.planning.latency.queueing.split_merge_scv`). A batching sender's
    departures count as Poisson (as in the fluid model); sources send ``ca2``. ``ca2`` where
    the input is not followed: joins (a task starts when its last input is there) and edges of
    another ratio (fan-out and sampling)."""
    edges = scenario.in_edges[op]
    if len(edges) != 1 or edges[0].ratio != 1.0:
        return ca2
    e = edges[0]
    parts: list[tuple[float, float, float]] = []
    flows = inflows.get((e.source, worker), [])
    for sender, rate, _tau in flows:
        st = stages.get(sender)
        if st is None:  # a source
            parts.append((rate, 1.0, ca2))
        elif st.batch > 1 or st.rate <= 0:
            parts.append((rate, 1.0, 1.0))
        else:
            rs = st.sojourn.utilization
            p = min(rate / st.rate, 1.0)
            cd2 = departure_scv(rs, st.service_scv, st.arrival_scv)
            seen = hybrid_scv(sender_weight(rs, me[0]), cd2, ca2)
            so = st.sojourn
            if p >= 1.0 - 1e-9 and len(flows) == 1 and isinstance(so, MixtureSojourn):
                fs = so.components[0][3]  # a dedicated pair; the sender's service fit
                pair = tandem_scv((rs, st.arrival_scv, fs.scv, fs.a3, fs.mean_s), me, q)
                jitter = spacing_jitter_scv((fs.scv, fs.mean_s), me)
                seen = min(seen, max(pair, jitter))
            parts.append((rate, p, seen))
    return split_merge_scv(parts) if parts else ca2


def _feeders(
    scenario: Scenario,
    inflows: Inflows,
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
    flows = inflows.get((e.source, worker), [])
    total = sum(rate for _sender, rate, _tau in flows)
    out: list[Feeder] = []
    for sender, rate, _tau in flows:
        st = stages.get(sender)
        if st is None or st.batch <= 1 or st.rate <= 0:
            continue
        svc = batch_service(scenario, st.operator, st.variant, st.worker, family)
        out.append(Feeder(rate / total, min(rate / st.rate, 1.0), svc, st.batch))
    return out


def _transfers_into(scenario: Scenario, inflows: Inflows, op: str, worker: str) -> dict[str, float]:
    """Per input of ``op``: the mean transfer time into ``worker``, weighted by its senders'
    flows (0 where it receives nothing on that input)."""
    out: dict[str, float] = {}
    for e in scenario.in_edges[op]:
        num = den = 0.0
        for _sender, rate, tau in inflows.get((e.source, worker), ()):
            num += rate * tau
            den += rate
        out[e.source] = num / den if den > 0 else 0.0
    return out


def _by_operator(
    scenario: Scenario, stages: dict[str, WorkerStage]
) -> dict[str, list[WorkerStage]]:
    out: dict[str, list[WorkerStage]] = {op: [] for op in scenario.topo_order}
    for st in stages.values():
        out[st.operator].append(st)
    return out


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


def _path_latency(
    path: tuple[str, ...], cdf: np.ndarray, grid: Grid, q: float, bound: float | None
) -> PathLatency:
    return PathLatency(
        path=path,
        latency_s=grid.quantile(cdf, q),
        mean_s=grid.mean(cdf),
        attainment=grid.at(cdf, bound) if bound else None,
    )
