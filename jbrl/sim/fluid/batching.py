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
* departures are taken as Poisson for the next stage (SCV 1, as the latency model assumes).
"""

from __future__ import annotations

import numpy as np

from jbrl.planning.latency import BatchTable, batch_table
from jbrl.sim.compiled import CompiledPlan

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
) -> list[BRow]:
    """The :data:`BRow` of every worker of ``workers`` with a share and a batch size above 1."""
    tau = cp.scenario.batch_wait_timeout_s
    out: list[BRow] = []
    for w, sh in zip(workers, shares, strict=True):
        if sh <= 0 or cp.batch[w] <= 1:
            continue
        bs = cp.batch_service[w]
        assert bs is not None
        tb = batch_table(bs, cp.batch[w], tau)
        t = grid - t_in.get(w, 0.0)
        cdfs = np.array([s.cdf(t) for s in tb.sojourns])
        cdfs[cdfs < 1e-30] = 0.0
        out.append((w, sh, tb, t_in.get(w, 0.0), cdfs, w not in down))
    return out


def batched_workers(
    brows: list[BRow], a_v: float, x: list[float], dt: float, timeout: float, grid: np.ndarray
) -> list[tuple[int, float, float, float, float, float, float, np.ndarray]]:
    """One step of each batching worker of an operator whose input is ``a_v`` tasks/s:
    updates the queues ``x`` and returns per worker ``(worker, share, served, dropped, busy
    seconds, mean wait, mean sojourn + transfer, sojourn CDF on the grid)``."""
    out = []
    for w, sh, tb, t_in, cdfs, up in brows:
        a = a_v * sh
        x0 = x[w]
        if a <= 0 and x0 <= 0:
            continue
        target = x0 + a * dt
        x1, rate = _euler(tb, target, dt) if up else (target, 0.0)
        served = target - x1
        cap = max(a, tb.capacity) * timeout + 1.0
        drop = 0.0
        if x1 > cap:
            drop = x1 - cap
            x1 = cap
        x[w] = x1
        i, f = tb.at_number(0.5 * (x0 + x1))
        last = len(tb.rates) - 1
        if i < last:
            cdf = cdfs[i] * (1.0 - f) + cdfs[i + 1] * f
            mean = tb.mean_s[i] * (1.0 - f) + tb.mean_s[i + 1] * f
            wait = tb.wait_s[i] * (1.0 - f) + tb.wait_s[i + 1] * f
            busy = tb.busy[i] * (1.0 - f) + tb.busy[i + 1] * f
        else:  # a backlog beyond the table: it waits for the tasks ahead, at most the timeout
            lag = min((0.5 * (x0 + x1) - tb.number[-1]) / tb.capacity, timeout)
            cdf = np.interp(grid - lag, grid, cdfs[-1], left=0.0)
            mean, wait, busy = tb.mean_s[-1] + lag, tb.wait_s[-1] + lag, 1.0
        if not up:
            busy = 0.0
        busy_s = float(busy) * dt if served > 0 else 0.0
        out.append((w, sh, float(served), drop, busy_s, float(wait), float(mean) + t_in, cdf))
    return out


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
