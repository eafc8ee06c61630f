"""Workers with a batch size above 1 in the fluid model.

Their queue and latency come from the latency model's :class:`~jbrl.planning.latency.
BatchTable` (the bulk queue's steady state at a ladder of rates; the same chain the planner
uses), as the batch-1 workers' come from the G/G/1 formulas:

* **queue**: the PSFFA with the batching worker's own relation between the mean number in
  system and its throughput, ``x = L(lambda) = lambda E[T](lambda)``: one backward-Euler step
  ``x1 + dt D(x1) = x0 + a dt`` with ``D = L^-1`` (piecewise linear on the table; the full
  capacity ``b / E[S_b]`` beyond it, where a backlog builds); the queue holds at most
  ``max(a, capacity) * timeout`` tasks, as for batch 1;
* **latency** at the step's mean state: the sojourn CDF (on the latency grid, shifted by the
  inbound transfer) interpolated between the table's two nearest rates; beyond the table a
  backlog adds ``(x - L_max) / capacity``;
* departures are taken as Poisson for the next stage (SCV 1) by batch-1 workers; a batching
  worker downstream gets them in groups, as in the latency model (its table is built with its
  batching senders, :func:`~jbrl.planning.latency.feeders.feeder_groups`).
"""

from __future__ import annotations

import numpy as np

from jbrl.planning.latency import BatchTable, Feeder, batch_table
from jbrl.sim.compiled import CompiledPlan
from jbrl.sim.fluid.metrics import IntervalSums

BRow = tuple[int, float, BatchTable, float, np.ndarray, bool]
"""A batching worker of an operator: (worker, share, table, inbound transfer (s), its sojourn
CDFs on the latency grid per table rate, available)."""


def batch_rows(
    cp: CompiledPlan,
    workers: list[int],
    shares: list[float],
    down: frozenset[int],
    t_in: dict[int, float],
    grid: np.ndarray,
    senders: dict[int, tuple[float, dict[int, float]]] | None = None,
) -> list[BRow]:
    """The :data:`BRow` of every worker of ``workers`` with a share and a batch size above 1.
    ``senders``: the workers on the primary input (an edge of ratio 1) with their shares and
    routing probabilities per receiver, whose batching ones feed the table groups."""
    tau = cp.scenario.batch_wait_timeout_s
    out: list[BRow] = []
    for w, sh in zip(workers, shares, strict=True):
        if sh <= 0 or cp.batch[w] <= 1:
            continue
        bs = cp.batch_service[w]
        assert bs is not None
        tb = batch_table(bs, cp.batch[w], tau, _feeders(cp, senders or {}, w))
        t = grid - t_in.get(w, 0.0)
        cdfs = np.array([s.cdf(t) for s in tb.sojourns])
        cdfs[cdfs < 1e-30] = 0.0
        out.append((w, sh, tb, t_in.get(w, 0.0), cdfs, w not in down))
    return out


def _feeders(
    cp: CompiledPlan, senders: dict[int, tuple[float, dict[int, float]]], w: int
) -> tuple[Feeder, ...]:
    """The batching senders of worker ``w`` (:class:`~jbrl.planning.latency.Feeder`)."""
    flows = {a: sa * probs.get(w, 0.0) for a, (sa, probs) in senders.items()}
    total = sum(flows.values())
    out = []
    for a, f in flows.items():
        bs = cp.batch_service[a]
        if f > 0 and cp.batch[a] > 1 and bs is not None:
            out.append(Feeder(f / total, min(senders[a][1][w], 1.0), bs, cp.batch[a]))
    return tuple(out)


def batched_workers(
    brows: list[BRow],
    v: int,
    a_v: float,
    x: list[float],
    dt: float,
    timeout: float,
    grid: np.ndarray,
    cd_w: list[float],
    acc: IntervalSums,
    bparts: list[tuple[int, float, np.ndarray]],
) -> tuple[float, float, float]:
    """One step of operator ``v``'s batching workers, whose input is ``a_v`` tasks/s (latency
    grid ``grid``): updates
    the queues ``x``, the departure SCVs ``cd_w`` (1) and the interval sums ``acc``, appends each
    worker's ``(v, share, sojourn CDF on the latency grid)`` to ``bparts``, and returns the
    departures, the drops and the share-weighted mean sojourn (+ transfer) of these workers."""
    dep = drops = sbar = 0.0
    for w, sh, tb, t_in, cdfs, up in brows:
        a = a_v * sh
        x0 = x[w]
        if a <= 0 and x0 <= 0:
            continue
        target = x0 + a * dt
        x1 = _euler(tb, target, dt)[0] if up else target
        served = target - x1
        cap = max(a, tb.capacity) * timeout + 1.0
        if x1 > cap:
            drops += x1 - cap
            x1 = cap
        x[w] = x1
        cdf, mean, wait, busy = _state(tb, cdfs, 0.5 * (x0 + x1), timeout, grid)
        cd_w[w] = 1.0
        acc.dep_w[w] += served
        acc.busy_w[w] += busy * dt if up and served > 0 else 0.0
        acc.wait_w[w] += served * wait
        dep += served
        sbar += sh * (mean + t_in)
        bparts.append((v, sh, cdf))
    return dep, drops, sbar


def _state(
    tb: BatchTable, cdfs: np.ndarray, xm: float, timeout: float, grid: np.ndarray
) -> tuple[np.ndarray, float, float, float]:
    """Sojourn CDF, mean sojourn, mean wait and busy fraction at a mean number in system
    ``xm``: interpolated between the table's rates; beyond the table a backlog adds the time
    to serve the tasks ahead, at most the timeout."""
    i, f = tb.at_number(xm)
    if i < len(tb.rates) - 1:
        cdf = cdfs[i] * (1.0 - f) + cdfs[i + 1] * f
        mean = tb.mean_s[i] * (1.0 - f) + tb.mean_s[i + 1] * f
        wait = tb.wait_s[i] * (1.0 - f) + tb.wait_s[i + 1] * f
        busy = tb.busy[i] * (1.0 - f) + tb.busy[i + 1] * f
        return cdf, float(mean), float(wait), float(busy)
    lag = min((xm - tb.number[-1]) / tb.capacity, timeout)
    cdf = np.interp(grid - lag, grid, cdfs[-1], left=0.0)
    return cdf, float(tb.mean_s[-1] + lag), float(tb.wait_s[-1] + lag), 1.0


def _euler(tb: BatchTable, target: float, dt: float) -> tuple[float, float]:
    """``x1`` with ``x1 + dt D(x1) = target`` (module docstring), and ``D(x1)``."""
    num, rates = tb.number, tb.rates
    g = num + dt * rates
    if target >= g[-1]:
        x1 = target - dt * tb.capacity
        if x1 < num[-1]:  # between the table's end and full capacity
            return float(num[-1]), (target - num[-1]) / dt
        return x1, tb.capacity
    i = max(int(np.searchsorted(g, target, side="right")) - 1, 0)
    f = (target - g[i]) / (g[i + 1] - g[i])
    return float(num[i] + f * (num[i + 1] - num[i])), float(
        rates[i] + f * (rates[i + 1] - rates[i])
    )
