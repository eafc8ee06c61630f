"""Combining the workers' sojourns into completion-time CDFs on a time grid, following the
plan's routing (:func:`~jbrl.planning.latency.paths.predict_plan`'s "a stage", "a join" and
"a path"; its module docstring says what is approximated)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from jbrl.planning.cost import CostReport
from jbrl.planning.latency.grid import cdf_of_sum
from jbrl.scenario.model import Scenario

if TYPE_CHECKING:
    from jbrl.planning.latency.paths import WorkerStage


# ---------------------------------------------------------------------- the grid


class Grid:
    """Equally spaced times from 0 covering 1.5 x the bound and every path's slow tail (the sum
    along the path of each stage's slowest worker's 1e-4 tail point, plus transfers)."""

    def __init__(
        self, scenario: Scenario, stages: dict[str, WorkerStage], bound: float | None, n: int
    ) -> None:
        slow: dict[str, float] = {}
        for op in scenario.topo_order:
            here = max((tail_point(st) for st in stages.values() if st.operator == op), default=0.0)
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


def tail_point(st: WorkerStage) -> float:
    """A time beyond which the worker's sojourn has at most ~1e-4 of its mass, plus its
    largest input transfer."""
    return st.sojourn.upper_s() + max(st.transfer_s.values(), default=0.0)


# ---------------------------------------------------------------------- combining

Inflows = dict[tuple[str, str], list[tuple[str, float, float]]]
"""Per (input operator or source, receiving worker): its senders as (sender, requests/s,
transfer time), from the plan's flows."""
ReadyKey = tuple[tuple[str, tuple[tuple[str, float, float], ...] | None, float], ...]
"""What a worker's ready time depends on, per followed input: (input, its senders as (sender,
weight, transfer in grid steps) - or None for the input operator's own mixture -, transfer s)."""


def inflows_of(scenario: Scenario, rep: CostReport) -> Inflows:
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


class Combiner:
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
        grid: Grid,
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
        self._ready: dict[ReadyKey, np.ndarray] = {}

    def op(self, op: str) -> np.ndarray:
        """P(a task of ``op`` completes by t), the mixture over its workers by share; workers
        whose inputs are ready at the same time share one convolution."""
        got = self.done_op.get(op)
        if got is not None:
            return got
        groups: dict[ReadyKey, np.ndarray] = {}
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

    def _key(self, st: WorkerStage) -> ReadyKey:
        """What ``st``'s ready time depends on: per followed input, (sender, weight, transfer)
        - or, where the senders' weights are their own operator's shares and their transfers
        equal, the sender operator's mixture and that transfer."""
        h = self.grid.h
        parts: list[tuple[str, tuple[tuple[str, float, float], ...] | None, float]] = []
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

    def _ready_of(self, key: ReadyKey) -> np.ndarray:
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


def completions(
    scenario: Scenario, by_op: dict[str, list[WorkerStage]], inflows: Inflows, grid: Grid
) -> dict[str, np.ndarray]:
    """Per operator, the CDF of a task's completion time from the request's arrival."""
    comb = Combiner(by_op, inflows, grid, lambda op: [e.source for e in scenario.in_edges[op]])
    return {op: comb.op(op) if by_op[op] else comb.start for op in scenario.topo_order}


def path_cdf(
    path: tuple[str, ...], by_op: dict[str, list[WorkerStage]], inflows: Inflows, grid: Grid
) -> np.ndarray:
    """The CDF of the sum of the path's stages (its own inputs only)."""
    prev = dict(zip(path[1:], path, strict=False))
    comb = Combiner(by_op, inflows, grid, lambda op: [prev[op]] if op in prev else [])
    last = next((op for op in reversed(path[1:]) if by_op[op]), None)
    return comb.op(last) if last is not None else comb.start
