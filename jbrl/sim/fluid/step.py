"""One step of the fluid model: flows through the operators, queues, requests, latency.

:func:`step` advances the :class:`Queues` by one backward-Euler step at constant source rates
with the queueing formulas of :mod:`jbrl.planning.latency`, and adds what happened to the
interval's :class:`~jbrl.sim.fluid.metrics.IntervalSums`.

Plain Python floats over the operators in topological order and their workers: an operator's
input is its senders' output of the same step, so the loop is sequential, and with a handful of
workers per operator a numpy call (~1 us) costs more than the scalar arithmetic it would replace.
Everything that depends only on the plan, the availability and the source mix is precomputed
(:mod:`~jbrl.sim.fluid.state`, :mod:`~jbrl.sim.fluid.topology`). Function calls cost too: the
step is three functions, not one per section.

**Latency.** Per worker, P(sojourn <= t) = G + y (1 - G - exp(-(t - s - D)^+ / E)) (G: service
plus inbound transfer; y, D, E from :func:`~jbrl.planning.latency.fluid_queue_step`); an
operator mixes its workers; a join multiplies its inputs' CDFs; a stage after a join adds (a
discrete convolution, only evaluated at the bound in a step: the full CDF waits until
percentiles are read). :func:`step` writes per worker of the mixture ``(alpha, 1 / E)`` to
``PlanState.par``, with ``alpha = (s + D) / E``, so that the exponent at grid time ``t`` is
``alpha - t / E`` (one matrix product instead of a broadcast add and multiply), and its share
times ``y`` to ``PlanState.wext``. The numpy calls work on a few hundred numbers each, so their
count, not their size, sets the cost.
"""

from __future__ import annotations

import array

import numpy as np

from jbrl.planning.latency import cdf_of_sum, fluid_queue_step
from jbrl.sim.fluid.batching import batched_workers
from jbrl.sim.fluid.metrics import IntervalSums, LatencyPart
from jbrl.sim.fluid.state import PlanState, Row
from jbrl.sim.fluid.topology import LatencyGrid, SourceMix, Topology

# 0-d arrays: no conversion per clip call
_CLIP_LO, _CLIP_HI = np.array(-60.0), np.array(0.0)


class Queues:
    """The fluid model's state between steps."""

    __slots__ = ("x", "cd_w", "joinbuf", "in_flight")

    def __init__(self, topo: Topology, n_workers: int) -> None:
        self.x = [0.0] * n_workers
        """mean number in system per worker"""
        self.cd_w = [1.0] * n_workers
        """SCV of each worker's departures (QNA) in the last step"""
        self.joinbuf: list[list[float]] = [
            [0.0] * len(topo.scenario.in_edges[op]) for op in topo.scenario.topo_order
        ]
        """per join operator and input, tasks waiting for their partners"""
        self.in_flight = 0.0
        """requests arrived and not yet completed or dropped"""


def step(
    q: Queues,
    st: PlanState,
    mix: SourceMix,
    topo: Topology,
    grid: LatencyGrid,
    lam_l: list[float],
    lam: float,
    dt: float,
    timeout: float,
    acc: IntervalSums,
) -> None:
    """One backward-Euler step of length ``dt`` at source rates ``lam_l`` (``lam`` is their
    maximum, the request rate), added to ``acc``."""
    c_op, _tau, joinable, _done, _terminal = mix
    comm_e = st.comm
    x = q.x
    n_ops = topo.n_ops
    dep_op = [0.0] * n_ops
    mean_op = [0.0] * n_ops  # mean time from arrival to the end of v's task
    ca2_op = [1.0] * n_ops  # squared coefficient of variation of v's departures
    cd_w = q.cd_w  # per worker, the same
    drop_req = [0.0] * n_ops
    dep_w, busy_w, wait_w = acc.dep_w, acc.busy_w, acc.wait_w
    comm = e_tail = 0.0
    any_drop = False
    queue_step = fluid_queue_step
    # per worker of the latency mixture: (alpha, 1 / E) of its waiting-time term and its
    # weight share * y (module docstring); every one is written (0 for a worker without work)
    par, wext = st.par, st.wext
    v = -1
    bparts: list[tuple[int, float, np.ndarray]] = []  # batching workers' sojourn CDFs
    b_args = (x, dt, timeout, grid.points, cd_w, acc, bparts)
    for join, e0, u0, r0, ins, rows, workers, brows in st.steps:
        v += 1
        # ---- input of v over dt (in v-tasks) and its timing: mean time until it is there, and
        # its arrival variability (QNA: Poisson at sources; an operator's departures mix its
        # workers'; a random split with probability p gives p c^2 + 1 - p)
        before = 0.0 if u0 < 0 else mean_op[u0]
        if not join:
            inflow = lam_l[-1 - u0] * r0 * dt if u0 < 0 else dep_op[u0] * r0
            comm += inflow * comm_e[e0]
            w_prim = ca_in = 1.0  # weight of the primary input's timing (its routing picks)
        else:
            inflow, comm, before, w_prim, ca_in = _join(
                q.joinbuf[v], joinable[v], topo.kill[v], ins, lam_l, dt, dep_op,
                drop_req if any_drop else None, c_op[v], comm_e, comm, mean_op, ca2_op, before,
            )  # fmt: skip
        if inflow <= 0 and not any([x[w] > 0 for w in workers]):
            _idle(rows, par, wext)
            continue
        a_v = inflow / dt
        # ---- workers: queues, departures, waits
        dep_v = drops_v = sbar = cd_sum = 0.0
        for w, sh, mu, scv, m, li2, wpos, sh_s, ca, terms, a3 in rows:
            if terms:
                for sender, coef in terms:
                    ca += coef * cd_w[sender]
            if w_prim < 1.0:
                ca = w_prim * ca + (1.0 - w_prim) * (sh * ca_in + 1.0 - sh)
            a = a_v * sh
            x0 = x[w]
            if a <= 0 and x0 <= 0:
                if li2 >= 0:  # no work: weight 0 (and a finite term)
                    par[li2] = par[li2 + 1] = wext[wpos] = 0.0
                continue
            x1, served, drop, y, wc, e_part, cd = queue_step(x0, a, mu, ca, scv, m, dt, timeout, a3)
            x[w] = x1
            cd_w[w] = cd
            cd_sum += served * cd
            dep_w[w] += served
            busy_w[w] += served * m
            wait_w[w] += served * y * wc
            dep_v += served
            if drop:
                drops_v += drop
            if li2 >= 0:
                sbar += sh * (y * wc + sh_s)
                inv_e = 1.0 / e_part if e_part > 1e-9 else 1e9
                par[li2] = (sh_s + (wc - e_part)) * inv_e
                par[li2 + 1] = inv_e
                wext[wpos] = sh * y
                if y > 1e-3 and e_part > e_tail:
                    e_tail = e_part
        if brows:  # batching workers (their departures have SCV 1)
            b_dep, b_drop, b_sbar = batched_workers(brows, v, a_v, *b_args)
            dep_v, cd_sum = dep_v + b_dep, cd_sum + b_dep
            drops_v, sbar = drops_v + b_drop, sbar + b_sbar
        dep_op[v] = dep_v
        mean_op[v] = before + sbar
        ca2_op[v] = cd_sum / dep_v if dep_v > 0 else 1.0
        if drops_v > 0:
            cv = c_op[v]
            drop_req[v] = drops_v / cv if cv > 0 else 0.0
            any_drop = True
    _account(
        q, acc, st, mix, topo, grid, lam_l, lam, dt, dep_op, mean_op,
        drop_req if any_drop else None, comm, e_tail, bparts,
    )  # fmt: skip


def _idle(rows: list[Row], par: array.array[float], wext: array.array[float]) -> None:
    """The workers of an operator without work take no part in the latency mixture."""
    for _w, _sh, _mu, _scv, _m, li2, wpos, *_ in rows:
        if li2 >= 0:
            par[li2] = par[li2 + 1] = wext[wpos] = 0.0


def _join(
    buf: list[float],
    fr: list[float],
    kills: list[list[int]],
    ins: list[tuple[int, int, int, float]],
    lam_l: list[float],
    dt: float,
    dep_op: list[float],
    drop_req: list[float] | None,
    cv: float,
    comm_e: list[float],
    comm: float,
    mean_op: list[float],
    ca2_op: list[float],
    before: float,
) -> tuple[float, float, float, float, float]:
    """A join's input over the step and its timing: ``(v-tasks in, comm plus their messages'
    dollars, mean time until all inputs are there, weight of the primary input's timing,
    arrival SCV of the other inputs)``; ``before`` is the primary input's mean time.

    The input is the least of the inputs with what waited in ``buf``; what is left waits for its
    partners, less the requests dropped on the other branches (``drop_req`` per operator, None
    when nothing was dropped in this step): those never find a partner. The input that arrives
    last sets the timing: the inputs weigh by the 4th power of their mean completion time (a
    soft, flip-free maximum).
    """
    avail = []
    for i, _e, u, ratio in ins:
        avail.append(buf[i] + ((lam_l[-1 - u] * dt) if u < 0 else dep_op[u]) * ratio * fr[i])
    inflow = min(avail)
    for i, e_idx, _u, _r in ins:
        left = avail[i] - inflow
        if left > 0 and drop_req is not None:
            kill = 0.0
            for z in kills[i]:
                kill += drop_req[z]
            if kill > 0:
                left = max(0.0, left - kill * cv)
        buf[i] = left
        comm += inflow * comm_e[e_idx]
    w_prim = 1.0
    ca_in = 1.0
    num = den = 0.0
    p0 = before**4
    for i, _e, u, _r in ins:
        if i and u >= 0:
            mu_u = mean_op[u]
            if mu_u > before:
                before = mu_u
            q = mu_u**4
            num += q * ca2_op[u]
            den += q
    if den + p0 > 0:
        w_prim = p0 / (den + p0)
        ca_in = num / den if den > 0 else 1.0
    return inflow, comm, before, w_prim, ca_in


def _account(
    q: Queues,
    acc: IntervalSums,
    st: PlanState,
    mix: SourceMix,
    topo: Topology,
    grid: LatencyGrid,
    lam_l: list[float],
    lam: float,
    dt: float,
    dep_op: list[float],
    mean_op: list[float],
    drop_req: list[float] | None,
    comm: float,
    e_tail: float,
    bparts: list[tuple[int, float, np.ndarray]],
) -> None:
    """Adds a step's requests and their latency to ``acc`` (one function: a call costs).

    Requests are the accounting unit, as in the DES: arrivals at the request rate ``lam``,
    completions (the terminal operators' departures ``dep_op`` in request units), drops
    (``drop_req`` per operator, None when there were none). Latency of the completed requests
    (see the module docstring): their mean (``mean_op`` of the terminal operators), the
    terminal operators' CDFs (:data:`~jbrl.sim.fluid.metrics.LatencyPart`), P(latency <=
    bound), and the slowest exponential stage ``e_tail``.
    """
    # ---- requests
    arrivals = lam * dt
    dropped = sum(drop_req) if drop_req is not None else 0.0
    completed = 0.0
    for v, tv, cv in mix.done:
        completed += tv * dep_op[v] / cv
    inflight = q.in_flight + arrivals - dropped - completed
    if inflight < 0:
        completed += inflight
        inflight = 0.0
    q.in_flight = inflight
    acc.arrivals += arrivals
    acc.completed += completed
    if drop_req is not None:
        acc.drops["timeout"] += dropped
    acc.comm += comm
    rates_acc = acc.rates
    for i, lv in enumerate(lam_l):
        rates_acc[i] += lv * dt
    if completed <= 0:
        return
    # ---- latency of the completed requests
    tau_pos = mix.terminal_pos
    g = st.buf_g
    st.par_np.dot(grid.jmat, g)  # alpha - t / E (ndarray.dot: np.dot's dispatch costs)
    # e^-60 is nothing; the clip keeps exp and the products below out of denormal numbers
    g.clip(_CLIP_LO, _CLIP_HI, g)
    np.exp(g, g)
    np.subtract(st.omg, g, st.stack_top)
    f_op = st.wext_np.dot(st.stack)  # a new array: the lazy percentiles keep its rows
    for v, sh, cdf in bparts:  # batching workers: their share of their operator's mixture
        f_op[v] += sh * cdf
    jb = grid.j_bound
    kr = grid.k_rows
    needs_full = topo.needs_full
    parts: list[LatencyPart] = []
    within = 0.0
    inputs: dict[int, np.ndarray] = {}  # CDF of the time all inputs of v are there
    for v, parents in topo.op_parents:
        before = f_op[parents[0]]
        for u in parents[1:]:
            before = before * f_op[u]
        inputs[v] = before
        if v in needs_full:
            # (rows of earlier operators are final: parents come first in topological order)
            f_op[v] = cdf_of_sum(before, f_op[v])
    for v, tv in tau_pos:
        before = inputs.get(v)
        fv = f_op[v]
        if before is None or v in needs_full:
            parts.append((tv, fv, None))
            within += tv * float(fv[jb])
        else:
            # P(inputs + sojourn <= bound) = before . (K fv), K fixed (see LatencyGrid)
            parts.append((tv, before, fv))
            within += tv * float(grid.k_bound.dot(fv[:kr]).dot(before[:kr]))
    mean = 0.0
    for v, tv in tau_pos:
        mean += tv * mean_op[v]
    acc.within += completed * within
    acc.mean_sum += completed * mean
    acc.parts.append((completed, parts))
    acc.weight += completed
    if e_tail > acc.e_tail:
        acc.e_tail = e_tail
