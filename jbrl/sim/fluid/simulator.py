"""Fluid simulator: per interval, flows and queues in expectation (fast, for training).

Model, per worker ``w`` with arrival rate ``a`` (its share of its operator's input), service mean
``m`` and squared coefficient of variation ``c2`` (from the same service fit as the DES):

* **Queue state** ``x`` (mean number in system) follows the pointwise stationary fluid flow
  approximation (PSFFA; Wang, Tipper et al. 1996): ``dx/dt = a - mu * G(x)`` where ``G`` inverts
  the G/G/1 relation ``x = L(r) = r + k r^2 / (1 - r)`` (Pollaczek-Khinchine / Kingman,
  ``k = (ca2 + c2) / 2``). One backward-Euler step per interval has a closed form (a quadratic in
  ``r``), is exact at equilibrium (``x = L(a/mu)``), and grows the backlog by ``(a - mu) t`` in
  overload. Departures are ``mu * t * r``; the backlog carries over to the next interval.
* **Arrival variability** ``ca2`` (Whitt's QNA): 1 (Poisson) at the sources; a worker's
  departures have ``r^2 c2 + (1 - r^2) ca2``; routing a stream with probability ``p`` gives
  ``p ca2 + 1 - p``; merged streams average by flow. A busy upstream stage smooths the arrivals of
  the next one (the VQA stage after a loaded feature extractor waits far less than M/G/1 says).
* **Timeouts**: the queue holds at most ``max(a, mu) * timeout`` tasks (older ones are dropped, as
  the DES drops a task that waited longer than the timeout); in steady state a fraction
  ``P(W > timeout)`` is dropped too.
* **Waiting time** at the interval's mean state: no wait with probability ``1 - r``, else
  ``D + Exp(E)``: the M/G/1 exponential approximation, with the part of the mean wait beyond the
  utilisation cap ``r = 0.98`` treated as a deterministic backlog ``D``. Sojourn = wait + service
  (lognormal/exponential/deterministic CDF) + inbound transfer (size / bandwidth + latency).
* **End-to-end latency** on a grid of ``grid_points`` times (the SLO bound is a grid point):
  an operator's sojourn is the mixture over its workers (routing shares); a join takes the max of
  its inputs (product of CDFs), a stage adds (convolution). Percentiles beyond the grid follow the
  slowest stage's exponential tail.
* **Requests** (the accounting unit, as in the DES): arrivals ``max_s rate(s) * t``; completions are
  the terminal operators' departures in request units; a dropped task drops its request; a join
  keeps inputs that wait for their partner in a buffer.
* **Reconfiguration**: a worker whose (operator, variant) changes serves nothing for its load time
  (its queue moves to the operator's new workers); crashes (fault schedule) take a worker out for
  the crash, drop the task in service and move its queue. Intervals are split where availability
  changes.
* **Dollars**: compute = hourly price of the plan's workers; communication = messages on each
  (sender, receiver) pair times the link's $/KB, as in the DES.

Latency percentiles and per-worker figures of an interval are computed when first read
(:class:`FluidIntervalMetrics`); the SLO attainment is always computed. Known limits: stages are
independent in the latency model (a loaded stage and the one after it are positively correlated
in reality, so near saturation the fluid's tail is a little light after a join), and percentiles
beyond the grid are rough.
"""

from __future__ import annotations

import array
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jbrl.planning.plan import Plan
from jbrl.scenario.model import Scenario
from jbrl.sim.base import (
    IntervalMetrics,
    RateSchedule,
    SimConfig,
    Simulator,
    empty_drops,
    rate_pieces,
)
from jbrl.sim.compiled import CompiledPlan, ServiceFit, load_changes
from jbrl.sim.faults import FaultSchedule

try:  # the clip ufunc itself: np.clip's Python wrapper costs more than the work here
    from numpy._core.umath import clip as _clip
except ImportError:  # pragma: no cover - numpy 1.x
    try:
        from numpy.core.umath import clip as _clip
    except ImportError:
        _clip = np.clip

_Y_CAP = 0.98  # utilisation above which extra mean wait counts as deterministic backlog
_QUANTILES = np.array([0.5, 0.95, 0.99])
_NO_DROPS = empty_drops()  # copied: a dict copy is cheaper than building one
_CLIP_LO, _CLIP_HI = np.array(-60.0), np.array(0.0)  # 0-d arrays: no conversion per clip call
_new_object = object.__new__

# per source mix (FluidSimulator._structure): tasks per request c and terminal fractions tau per
# operator, joinable fractions per input edge, terminal (v, tau, c) with tau, c > 0, (v, tau > 0)
_Struct = tuple[
    list[float],
    list[float],
    list[list[float]],
    list[tuple[int, float, float]],
    list[tuple[int, float]],
]


@dataclass
class _OpSpec:
    """Per operator, for one routing state (aligned lists over the operator's workers)."""

    workers: list[int]
    shares: list[float]
    mu: list[float]  # 1 / mean service (0 while unavailable)
    k: list[float]
    m: list[float]
    in_edges: list[tuple[int, int, float, float]]  # (edge index, u, ratio, kb)
    join: bool
    lat_pos: list[int]  # position in the latency mixture, -1 if no share
    # zipped (worker, share, mu, service SCV, m, 2 lat_pos (-1 if no share), position in
    # _State.wext, m + inbound transfer, and the arrival SCV terms of ca_pairs), for speed
    rows: list[tuple[int, float, float, float, float, int, int, float, float, Any]] | None = None
    # per row: arrival SCV = const + sum(coef * departure SCV of sender worker) when the
    # primary input (the one whose routing picks the worker) dominates the timing
    ca_pairs: list[tuple[float, list[tuple[int, float]]]] | None = None


@dataclass
class _State:
    """Precomputed per (plan, availability, link slow-downs)."""

    ops: list[_OpSpec]
    dep_workers: list[int]  # workers in the latency mixture, in order
    wmix: np.ndarray  # (n_ops, n_dep) operator shares
    base_op: np.ndarray  # (n_ops, N) wmix @ G: sojourn CDF when nobody waits
    omg: np.ndarray  # (n_dep, N) 1 - G, G = P(service + inbound transfer <= t)
    comm: list[float]  # $ per v-task on each edge (mean over senders, by share)
    # per operator, what _step reads, unpacked in one go (attribute look-ups and tuple indexing
    # cost more than the arithmetic): (join, first input's edge index, sender (-1 - source index
    # for a source), ratio, inputs as (position, edge index, sender, ratio), rows, workers)
    steps: list[
        tuple[
            bool,
            int,
            int,
            float,
            list[tuple[int, int, int, float]],
            list[tuple[int, float, float, float, float, int, int, float, float, Any]],
            list[int],
        ]
    ] = field(init=False)

    # latency scratch (see FluidSimulator._latency): small numpy calls cost mostly overhead, so
    # nothing is allocated per step but the result
    par: array.array[float] = field(init=False)  # (alpha, 1 / E) per dep worker
    par_zero: array.array[float] = field(init=False)  # par with every entry 0
    par_np: np.ndarray = field(init=False)  # (n_dep, 2) view of par
    buf_g: np.ndarray = field(init=False)  # (n_dep, N) exponent, then exp
    stack: np.ndarray = field(init=False)  # (n_dep + n_ops, N): 1 - G - exp; base_op
    stack_top: np.ndarray = field(init=False)  # (n_dep, N) view of stack: 1 - G - exp
    wext: array.array[float] = field(init=False)  # (n_ops, n_dep + n_ops), row-major
    wext_zero: array.array[float] = field(init=False)  # wext with y = 0
    wext_np: np.ndarray = field(init=False)  # view of wext: [wmix * y | I]

    def __post_init__(self) -> None:
        steps = []
        for o in self.ops:
            e0, u0, r0, _kb = o.in_edges[0]
            ins = [(i, e, u, r) for i, (e, u, r, _kb) in enumerate(o.in_edges)]
            steps.append((o.join, e0, u0, r0, ins, o.rows or [], o.workers))
        self.steps = steps
        nd, (n_ops, n) = len(self.dep_workers), self.base_op.shape
        # _step writes the parameters straight into numpy's memory (array.array items take
        # Python floats as fast as a list; converting a list to an array costs ~1 us a step)
        self.par = array.array("d", bytes(16 * nd))
        self.par_zero = array.array("d", bytes(16 * nd))
        self.par_np = np.frombuffer(self.par, dtype=float).reshape(nd, 2)
        self.buf_g = np.empty((nd, n))
        # operator CDFs = [wmix * y | I] @ [1 - G - exp; base_op]: one product adds base_op too;
        # _step writes share * y of each worker of the mixture at its wpos (a worker's column is
        # nonzero in its operator's row only, as in wmix)
        self.stack = np.empty((nd + n_ops, n))
        self.stack[nd:] = self.base_op
        self.stack_top = self.stack[:nd]
        wext = np.zeros((n_ops, nd + n_ops))
        wext[:, nd:] = np.eye(n_ops)
        self.wext = array.array("d", wext.tobytes())
        self.wext_zero = array.array("d", wext.tobytes())
        self.wext_np = np.frombuffer(self.wext, dtype=float).reshape(n_ops, nd + n_ops)


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, |error| < 1.5e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def _conv_half(cdf_a: np.ndarray, cdf_b: np.ndarray) -> np.ndarray:
    """CDF of A + B on the grid from A's cell masses (cell centres) and B's CDF.

    Only the first ``n`` terms of the convolution are kept, so A's masses go behind ``n - 1``
    zeros and a 'valid' convolution computes just those (``n`` dot products instead of
    ``2 n - 1``).
    """
    n = len(cdf_b)
    padded = np.zeros(2 * n - 1)
    padded[n - 1] = cdf_a[0]
    np.subtract(cdf_a[1:], cdf_a[:-1], padded[n:])  # cell masses
    half = np.empty(n)
    np.add(cdf_b[:-1], cdf_b[1:], half[:-1])
    half[:-1] *= 0.5
    half[-1] = cdf_b[-1]
    return np.convolve(padded, half, "valid")


def service_cdf(fit: ServiceFit, t: np.ndarray) -> np.ndarray:
    """P(S <= t) for the fitted service distribution."""
    out = np.zeros_like(t)
    pos = t > 0
    if fit.family == "lognormal" and fit.sigma > 0:
        out[pos] = _norm_cdf((np.log(t[pos]) - fit.log_median) / fit.sigma)
    elif fit.family == "exponential":
        out[pos] = -np.expm1(-t[pos] / fit.mean_s)
    else:
        out = (t >= fit.mean_s).astype(float)
    return out


class FluidSimulator(Simulator):
    """Fluid-flow simulator (see the module docstring). ``grid_points``: latency grid size."""

    kind = "fluid"

    def __init__(self, config: SimConfig | None = None, grid_points: int = 128) -> None:
        super().__init__(config)
        self.grid_points = grid_points

    # ------------------------------------------------------------------ lifecycle

    def reset(
        self,
        scenario: Scenario,
        plan: Plan,
        seed: int | None = 0,
        *,
        design_rates: Mapping[str, float] | None = None,
        faults: FaultSchedule | None = None,
    ) -> None:
        self.scenario = scenario
        self.faults = (faults or FaultSchedule()).validate(scenario)
        self._has_faults = bool(self.faults)
        self.time = 0.0
        nw = len(scenario.workers)
        self.x = [0.0] * nw
        self.avail_at = [0.0] * nw
        self._crashed: frozenset[int] = frozenset()
        self._inflight = 0.0
        self.timeout_s = self.config.timeout_for(scenario)
        self.bound_s = scenario.slo.latency_ms / 1000.0
        self._build_grid(scenario)
        self._structures: dict[tuple[float, ...], _Struct] = {}
        self._struct: _Struct | None = None
        self._struct_key: tuple[float, ...] | None = None
        n_ops = len(scenario.topo_order)
        self.joinbuf: list[list[float]] = [
            [0.0] * len(scenario.in_edges[op]) for op in scenario.topo_order
        ]
        self._pending_reconf: list[str] = []
        self._names_plan: CompiledPlan | None = None
        self._names: list[tuple[int, str]] = []
        self._op_groups: list[tuple[str, list[int]]] = []
        self.compiled: CompiledPlan | None = None
        self._states: dict[tuple[frozenset[int], tuple[float, ...]], _State] = {}
        anc = self._ancestor_sets(scenario)
        pos = {op: i for i, op in enumerate(scenario.topo_order)}
        # for each join input: operators whose drops mean the input never finds its partner
        self._kill: list[list[list[int]]] = []
        for op in scenario.topo_order:
            per_edge = []
            for e in scenario.in_edges[op]:
                own = anc[e.source] | {e.source} if e.source in anc else set()
                per_edge.append(sorted(pos[z] for z in anc[op] - own))
            self._kill.append(per_edge)
        self._n_ops = n_ops
        self._n_sources = len(scenario.sources)
        self._ones = (1.0,) * len(scenario.sources)
        self._source_names = [src.name for src in scenario.sources]
        self._op_parents = [
            (v, [pos[e.source] for e in scenario.in_edges[op] if e.source in pos])
            for v, op in enumerate(scenario.topo_order)
            if any(e.source in pos for e in scenario.in_edges[op])
        ]
        self._needs_full = {pos[op] for op in scenario.topo_order if scenario.out_edges[op]}
        sinks = [pos[op] for op in scenario.sinks]
        self._single_terminal = sinks[0] if len(sinks) == 1 else None
        self._move_drops = empty_drops()
        self._move_drops_total = 0.0
        self._cd_w = [1.0] * len(scenario.workers)
        self._down_until = 0.0
        self._state_up: _State | None = None
        self._install(plan, design_rates, initial=True)

    def _build_grid(self, scenario: Scenario) -> None:
        """Latency grid: ``N`` points on ``[0, t_max]`` with the SLO bound at a grid point."""
        n = self.grid_points
        bound = scenario.slo.latency_ms / 1000.0
        # longest chain of p99 services, to keep very slow workflows on the grid
        slowest: dict[str, float] = {}
        for op in scenario.topo_order:
            worst = (
                max((p.p90_ms for p in scenario.profiles if p.operator == op), default=0.0)
                / 1000.0
                * 1.5
            )
            prev = max((slowest.get(e.source, 0.0) for e in scenario.in_edges[op]), default=0.0)
            slowest[op] = prev + worst + 0.05
        chain = max(slowest.values(), default=0.0)
        depth: dict[str, int] = {}
        for op in scenario.topo_order:
            depth[op] = 1 + max((depth.get(e.source, 0) for e in scenario.in_edges[op]), default=0)
        self._lat_cap = max(depth.values(), default=1) * self.timeout_s + chain
        span = max(3.0 * bound, 1.5 * chain)
        self.j_bound = max(1, round((n - 1) * bound / span))
        self.h = bound / self.j_bound
        self.grid = np.arange(n) * self.h
        self.t_max = float(self.grid[-1])
        # P(A + B <= bound) on the grid, with A's cell masses at cell centres:
        # sum_i (A[i] - A[i-1]) * (B[jb-i] + B[jb-i+1]) / 2 = A . (K B) for a fixed matrix K
        jb = self.j_bound
        half = np.zeros((n + 1, n))  # half[i] . B = (B[jb-i] + B[jb+1-i]) / 2, 0 past jb
        for i in range(jb + 1):
            half[i, jb - i] += 0.5
            half[i, jb + 1 - i] += 0.5
        self._k_rows = jb + 2  # rows past jb + 1 are zero, and so are columns (B past jb + 1)
        self._k_bound = np.ascontiguousarray((half[:n] - half[1:])[: self._k_rows, : self._k_rows])
        # the exponent of a worker's waiting-time term at grid time t, (s + D - t) / E, as one
        # matrix product (n_dep, 2) @ (2, N): rows ((s + D) / E, 1 / E) times rows (1, -t)
        self._jmat = np.ones((2, n))
        self._jmat[1] = -self.grid

    @staticmethod
    def _ancestor_sets(scenario: Scenario) -> dict[str, set[str]]:
        anc: dict[str, set[str]] = {}
        for op in scenario.topo_order:
            s: set[str] = set()
            for e in scenario.in_edges[op]:
                if e.source in anc:
                    s |= anc[e.source] | {e.source}
            anc[op] = s
        return anc

    # ------------------------------------------------------------------ plan

    def _install(
        self, plan: Plan, design_rates: Mapping[str, float] | None, initial: bool = False
    ) -> list[str]:
        assert self.scenario is not None
        new = CompiledPlan(self.scenario, plan, design_rates, self.config.service)
        old = self.compiled
        changes: dict[int, float] = (
            {} if initial and self.config.warm_start else load_changes(old, new)
        )
        now = self.time
        moved: list[tuple[int, float]] = []  # (old operator index, tasks)
        for wi in range(len(self.x)):
            leaving = old is not None and wi in old.deployed and wi not in new.deployed
            if (wi in changes or leaving) and self.x[wi] > 0 and old is not None:
                moved.append((int(old.w_op[wi]), self.x[wi]))
                self.x[wi] = 0.0
            if wi in changes:
                self.avail_at[wi] = now + changes[wi]
        self.compiled = new
        self.plan = plan
        self._states = {}
        self._state_up = None
        self._down_until = max(self.avail_at, default=0.0)
        for oi, tasks in moved:
            self._move(oi, tasks, self._down_at(now), avoid=-1)
        self._pending_reconf.extend(new.workers[i] for i in sorted(changes))
        return [new.workers[i] for i in sorted(changes)]

    def apply(self, plan: Plan, design_rates: Mapping[str, float] | None = None) -> list[str]:
        if self.scenario is None:
            raise RuntimeError("call reset() first")
        return self._install(plan, design_rates)

    def _down_at(self, t: float) -> frozenset[int]:
        crashed = self._crashed_at(t)
        return frozenset([i for i, a in enumerate(self.avail_at) if a > t + 1e-12] + list(crashed))

    def _crashed_at(self, t: float) -> frozenset[int]:
        if not self.faults.crashes:
            return frozenset()
        assert self.compiled is not None
        return frozenset(self.compiled.worker_index[n] for n in self.faults.down_at(t))

    def _move(self, oi: int, tasks: float, down: frozenset[int], avoid: int) -> None:
        """Put ``tasks`` of operator ``oi`` on its workers (available first)."""
        assert self.compiled is not None
        weights = self.compiled.base_weights[oi]
        cand = {w: s for w, s in weights.items() if w not in down and w != avoid}
        if not cand:
            cand = {w: s for w, s in weights.items() if w != avoid}
        tot = sum(cand.values())
        if tot <= 0:
            c = self._c_of(oi)
            lost = tasks / c if c > 0 else 0.0
            self._move_drops["no_worker"] += lost
            self._move_drops_total += lost
            return
        for w, s in cand.items():
            self.x[w] += tasks * s / tot

    def _c_of(self, oi: int) -> float:
        if self._struct is None:
            return 1.0
        return self._struct[0][oi] or 1.0

    # ------------------------------------------------------------------ precomputation

    def _state(self, down: frozenset[int], slow_t: float | None) -> _State:
        cp = self.compiled
        assert cp is not None and self.scenario is not None
        slow_key: tuple[float, ...] = ()
        if slow_t is not None and self.faults.slowdowns:
            slow_key = tuple(float(s.at <= slow_t < s.until) for s in self.faults.slowdowns)
        key = (down, slow_key)
        st = self._states.get(key)
        if st is not None:
            return st
        routing = cp.routing(down)
        ops: list[_OpSpec] = []
        for oi in range(len(cp.ops)):
            ws = list(cp.base_weights[oi])
            ws.sort()
            share_of = dict(
                zip(routing.op_workers[oi].tolist(), routing.op_share[oi].tolist(), strict=True)
            )
            fits = [cp.service[w] for w in ws]
            in_edges = [(ed.index, ed.u, ed.ratio, ed.kb) for ed in cp.in_edges[oi]]
            ops.append(
                _OpSpec(
                    workers=ws,
                    shares=[share_of.get(w, 0.0) for w in ws],
                    mu=[
                        0.0 if w in down else 1.0 / f.mean_s for w, f in zip(ws, fits, strict=True)
                    ],
                    k=[f.k for f in fits],
                    m=[f.mean_s for f in fits],
                    in_edges=in_edges,
                    join=len(in_edges) > 1,
                    lat_pos=[],
                )
            )
        # latency mixture over workers with a share
        dep = [w for o in ops for w, s in zip(o.workers, o.shares, strict=True) if s > 0]
        col = {w: i for i, w in enumerate(dep)}
        for o in ops:
            o.lat_pos = [
                col.get(w, -1) if s > 0 else -1 for w, s in zip(o.workers, o.shares, strict=True)
            ]
        wmix = np.zeros((len(ops), len(dep)))
        for oi, o in enumerate(ops):
            for w, s in zip(o.workers, o.shares, strict=True):
                if s > 0:
                    wmix[oi, col[w]] = s
        # inbound transfer per worker: max over its input edges of the sender-weighted mean
        t_in = dict.fromkeys(dep, 0.0)
        comm = [0.0] * len(cp.edges)
        for ed in cp.edges:
            senders = cp.senders_of(ed)
            if ed.u >= 0:
                o_u = ops[ed.u]
                sw = {w: s for w, s in zip(o_u.workers, o_u.shares, strict=True) if s > 0} or {
                    w: 1.0 for w in o_u.workers
                }
                tot = sum(sw.values())
                sender_share = {w: s / tot for w, s in sw.items()}
            else:
                sender_share = {ed.u: 1.0}
            per_recv: dict[int, list[float]] = {}
            per_sender_cost: dict[int, float] = {}
            for sid in senders:
                probs = cp.receiver_probs(routing, ed, sid)
                cost = 0.0
                for b, p in probs.items():
                    lk = cp.link(sid, b)
                    f = self._slow_factor(sid, b, slow_t)
                    cost += p * ed.kb * lk.dollars_per_kb
                    if b in t_in and sid in sender_share:
                        acc = per_recv.setdefault(b, [0.0, 0.0])
                        wgt = sender_share[sid] * p
                        acc[0] += wgt * lk.seconds(ed.kb, f)
                        acc[1] += wgt
                per_sender_cost[sid] = cost
            comm[ed.index] = sum(
                sender_share.get(sid, 0.0) * c for sid, c in per_sender_cost.items()
            )
            for b, (num, den) in per_recv.items():
                if den > 0:
                    t_in[b] = max(t_in[b], num / den)
        grid = self.grid
        table = np.zeros((len(dep), len(grid)))
        for i, w in enumerate(dep):
            fit = cp.service[w]
            assert fit is not None
            table[i] = service_cdf(fit, grid - t_in[w])
        table[table < 1e-30] = 0.0  # no denormal numbers in the products of CDFs
        for oi, o in enumerate(ops):
            o.ca_pairs = self._arrival_scv_terms(cp, routing, ops, oi)
        for oi, o in enumerate(ops):
            o.rows = [
                (
                    w,
                    sh,
                    mu,
                    2.0 * k - 1.0,
                    m,
                    2 * li if li >= 0 else -1,
                    oi * (len(dep) + len(ops)) + li if li >= 0 else -1,
                    m + t_in.get(w, 0.0),
                    const,
                    terms,
                )
                for w, sh, mu, k, m, li, (const, terms) in zip(
                    o.workers, o.shares, o.mu, o.k, o.m, o.lat_pos, o.ca_pairs, strict=True
                )
            ]
        st = _State(
            ops,
            dep,
            wmix,
            wmix @ table,
            1.0 - table,
            comm,
        )
        self._states[key] = st
        return st

    @staticmethod
    def _arrival_scv_terms(
        cp: CompiledPlan, routing: Any, ops: list[_OpSpec], oi: int
    ) -> list[tuple[float, list[tuple[int, float]]]]:
        """QNA split and merge for the primary input: receiver b gets from sender a the flow
        share(a) p(a, b); thinning by p gives p c^2 + 1 - p; merging averages by flow."""
        o = ops[oi]
        ed = cp.in_edges[oi][0]
        out: list[tuple[float, list[tuple[int, float]]]] = []
        if ed.u < 0:
            return [(1.0, []) for _ in o.workers]
        o_u = ops[ed.u]
        senders = [(a, sa) for a, sa in zip(o_u.workers, o_u.shares, strict=True) if sa > 0]
        probs = {a: cp.receiver_probs(routing, ed, a) for a, _ in senders}
        for b in o.workers:
            flows = [(a, sa * probs[a].get(b, 0.0), probs[a].get(b, 0.0)) for a, sa in senders]
            tot = sum(f for _, f, _ in flows)
            if tot <= 0:
                out.append((1.0, []))
                continue
            const = sum(f / tot * (1.0 - p) for _, f, p in flows)
            out.append((const, [(a, f / tot * p) for a, f, p in flows if f > 0]))
        return out

    def _slow_factor(self, sender: int, receiver: int, t: float | None) -> float:
        if t is None or not self.faults.slowdowns:
            return 1.0
        cp = self.compiled
        assert cp is not None and self.scenario is not None
        return self.faults.link_factor(
            self.scenario, cp.sender_name(sender), cp.workers[receiver], t
        )

    def _structure(self, p: tuple[float, ...]) -> _Struct:
        """For source emission probabilities ``p``: tasks per request ``c`` per operator, terminal
        fractions ``tau``, joinable fractions per input edge, and (for the per-step loops) the
        terminal operators ``(v, tau, c)`` with ``tau, c > 0`` and ``(v, tau)`` with ``tau > 0``."""
        st = self._structures.get(p)
        if st is not None:
            return st
        s = self.scenario
        assert s is not None
        rates = {src.name: p[i] for i, src in enumerate(s.sources)}
        d = s.demand(rates)
        pres: dict[str, float] = dict(rates)
        for op in s.topo_order:
            vals = []
            for e in s.in_edges[op]:
                pu = pres[e.source]
                cu = d[e.source]
                vals.append(pu * min(1.0, e.ratio * cu / pu) if pu > 0 else 0.0)
            pres[op] = min(vals)
        tau = []
        for op in s.topo_order:
            kids = [e.target for e in s.out_edges[op]]
            nxt = max((pres[k] for k in kids), default=0.0)
            tau.append(max(0.0, pres[op] - nxt))
        tot = sum(tau)
        tau = [t / tot for t in tau] if tot > 0 else tau
        c = [d[op] for op in s.topo_order]
        joinable = []
        for op in s.topo_order:
            fr = []
            for e in s.in_edges[op]:
                denom = d[e.source] * e.ratio
                fr.append(min(1.0, d[op] / denom) if denom > 0 else 0.0)
            joinable.append(fr)
        done = [
            (v, tv, cv) for v, (tv, cv) in enumerate(zip(tau, c, strict=True)) if tv > 0 and cv > 0
        ]
        tau_pos = [(v, tv) for v, tv in enumerate(tau) if tv > 0]
        st = (c, tau, joinable, done, tau_pos)
        if len(self._structures) < 4096:
            self._structures[p] = st
        return st

    # ------------------------------------------------------------------ advance

    def advance(self, seconds: float, rates: RateSchedule) -> IntervalMetrics:
        if self.scenario is None or self.compiled is None:
            raise RuntimeError("call reset() first")
        pieces = self._pieces(seconds, rates)
        t0 = self.time
        t1 = t0 + seconds
        acc = _Acc(len(self.x), self._n_sources, self._lat_cap)
        in_flight0 = self._inflight
        if self._move_drops_total:
            for k, v in self._move_drops.items():
                acc.drops[k] += v
            self._move_drops = empty_drops()
            self._move_drops_total = 0.0
            self._inflight -= acc.total_drops()
        if len(pieces) == 1 and not self._has_faults and self._down_until <= t0:
            # the common case (one rate vector, nothing loading, no fault schedule): one step
            dur, lam_l = pieces[0]
            self._step((t0 + dur) - t0, lam_l, t0, acc)
        else:
            cuts = self._cut_times(t0, t1) if self._has_faults or self._down_until > t0 else []
            t = t0
            for dur, lam_l in pieces:
                end = t + dur
                start = t
                for c in cuts:
                    if start < c < end:
                        self._step(c - start, lam_l, start, acc)
                        start = c
                self._step(end - start, lam_l, start, acc)
                t = end
        self.time = t1
        return self._metrics(t0, seconds, in_flight0, acc)

    def _pieces(self, seconds: float, rates: RateSchedule) -> list[tuple[float, list[float]]]:
        """Fast path for one vector or mapping of rates; else :func:`rate_pieces`."""
        ns = self._n_sources
        if isinstance(rates, np.ndarray) and rates.shape == (ns,):
            lam = rates.tolist()
        elif (
            isinstance(rates, Mapping)
            and len(rates) == ns
            and all(n in rates for n in self._source_names)
        ):
            lam = [float(rates[n]) for n in self._source_names]
        else:
            return [(d, v.tolist()) for d, v in rate_pieces(self.scenario, seconds, rates)]  # type: ignore[arg-type]
        tot = sum(lam)
        if not (seconds > 0 and math.isfinite(seconds)) or not math.isfinite(tot) or min(lam) < 0:
            return [(d, v.tolist()) for d, v in rate_pieces(self.scenario, seconds, np.array(lam))]  # type: ignore[arg-type]
        return [(float(seconds), lam)]

    def _cut_times(self, t0: float, t1: float) -> list[float]:
        cuts = [a for a in self.avail_at if t0 < a < t1]
        if self.faults:
            cuts += [c for c in self.faults.change_times() if t0 < c < t1]
        return sorted(set(cuts))

    def _step(self, dt: float, lam_l: list[float], t: float, acc: _Acc) -> None:
        """One backward-Euler step of length ``dt`` at source rates ``lam_l``, added to ``acc``.

        Plain Python floats over the operators in topological order and their workers: an
        operator's input is its senders' output of the same step, so the loop is sequential, and
        with a handful of workers per operator a numpy call (~1 us) costs more than the scalar
        arithmetic it would replace. Everything that depends only on the plan, the availability
        and the source mix is precomputed (:meth:`_state`, :meth:`_structure`).
        """
        if dt <= 0:
            return
        if self._has_faults or self._down_until > t:
            down = self._down_at(t)
            crashed = self._crashed_at(t)
            if crashed != self._crashed:
                for w in crashed - self._crashed:
                    self._crash(w, down, acc)
                self._crashed = crashed
            st = self._state(down, t if self.faults.slowdowns else None)
        else:
            st = self._state_up
            if st is None:
                st = self._state_up = self._state(frozenset(), None)
        lam = max(lam_l) if lam_l else 0.0
        if lam > 0:
            # emission probabilities per source (all 1 when the sources run at one rate)
            key = (
                self._ones
                if lam_l.count(lam) == len(lam_l)
                else tuple(map(lam.__rtruediv__, lam_l))  # v / lam (no comprehension: faster)
            )
            if key != self._struct_key:
                self._struct = self._structure(key)
                self._struct_key = key
        struct = self._struct
        if struct is None:
            struct = self._struct = self._structure((1.0,) * len(lam_l))
        c_op, _tau, joinable, done, tau_pos = struct
        arrivals = lam * dt
        comm_e = st.comm
        x = self.x
        tau_s = self.timeout_s
        neg_tau = -tau_s
        n_ops = self._n_ops
        dep_op = [0.0] * n_ops
        mean_op = [0.0] * n_ops  # mean time from arrival to the end of v's task
        ca2_op = [1.0] * n_ops  # squared coefficient of variation of v's departures
        cd_w = self._cd_w  # per worker, the same
        drop_req = [0.0] * n_ops
        dep_w = acc.dep_w
        busy_w = acc.busy_w
        wait_w = acc.wait_w
        comm = 0.0
        e_tail = 0.0
        any_drop = False
        sqrt = math.sqrt
        exp = math.exp
        y_cap = _Y_CAP
        # per worker of the latency mixture: (alpha, 1 / E) of its waiting-time term and its
        # weight share * y, see _latency; a worker that takes no part keeps weight 0
        par = st.par
        par[:] = st.par_zero  # (finite: a worker that takes no part contributes 0 x its term)
        wext = st.wext
        wext[:] = st.wext_zero
        v = -1
        for join, e0, u0, r0, ins, rows, workers in st.steps:
            v += 1
            # ---- input of v over dt, in v-tasks
            if not join:
                inflow = lam_l[-1 - u0] * r0 * dt if u0 < 0 else dep_op[u0] * r0
                comm += inflow * comm_e[e0]
            else:
                buf = self.joinbuf[v]
                fr = joinable[v]
                avail = []
                for i, _e, u, ratio in ins:
                    avail.append(
                        buf[i] + ((lam_l[-1 - u] * dt) if u < 0 else dep_op[u]) * ratio * fr[i]
                    )
                inflow = min(avail)
                cv = c_op[v]
                kills = self._kill[v]
                for i, e_idx, _u, _r in ins:
                    left = avail[i] - inflow
                    if left > 0 and any_drop:
                        # requests dropped on the other branches never find a partner
                        kill = 0.0
                        for z in kills[i]:
                            kill += drop_req[z]
                        if kill > 0:
                            left = max(0.0, left - kill * cv)
                    buf[i] = left
                    comm += inflow * comm_e[e_idx]
            if inflow <= 0 and not any([x[w] > 0 for w in workers]):
                continue
            # arrival variability (QNA): Poisson at sources; an operator's departures mix its
            # workers' (c_d^2 = r^2 c_s^2 + (1 - r^2) c_a^2); a join follows its slowest input;
            # a random split with probability p gives p c^2 + 1 - p
            before = 0.0 if u0 < 0 else mean_op[u0]
            w_prim = 1.0  # weight of the primary input's timing (its routing picks the worker)
            ca_in = 1.0
            if join:
                # the input that arrives last sets a join's timing: weigh the inputs by the 4th
                # power of their mean completion time (a soft, flip-free maximum)
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
            a_v = inflow / dt
            dep_v = 0.0
            drops_v = 0.0
            sbar = 0.0
            cd_sum = 0.0
            for w, sh, mu, scv, m, li2, wpos, sh_s, ca, terms in rows:
                for a, coef in terms:
                    ca += coef * cd_w[a]
                if w_prim < 1.0:
                    ca = w_prim * ca + (1.0 - w_prim) * (sh * ca_in + 1.0 - sh)
                k = 0.5 * (ca + scv)
                a = a_v * sh
                x0 = x[w]
                if a <= 0 and x0 <= 0:
                    continue
                b = x0 + a * dt
                cc = mu * dt
                km1 = k - 1.0
                aa = km1 - cc
                bb = 1.0 + cc + b
                r = 2.0 * b / (bb + sqrt(bb * bb + 4.0 * aa * b))
                served = cc * r
                x1 = b - served
                cap = (a if a > mu else mu) * tau_s + 1.0
                drop = 0.0
                if x1 > cap:
                    drop = x1 - cap
                    x1 = cap
                # state at mid-interval drives the latency model
                xm = 0.5 * (x0 + x1)
                bm = 1.0 + xm
                y = 2.0 * xm / (bm + sqrt(bm * bm + 4.0 * km1 * xm)) if xm > 0 else 0.0
                km = k * m
                if y > 0.5:
                    wc = (xm - y) * m / (y * y)
                    e_part = km / (1.0 - (y if y < y_cap else y_cap))
                else:  # (the same expression twice when y <= 0.5 < y_cap)
                    wc = e_part = km / (1.0 - y)
                if wc > tau_s:
                    wc = tau_s
                if mu > 0:
                    if e_part >= wc * 0.999999:  # (equal at equilibrium, up to rounding)
                        e_part = wc
                        # no backlog: the share of waits beyond the timeout, P(W > T)
                        if e_part > 0 and served > 0 and drop == 0.0:
                            z = neg_tau / e_part
                            if z > -30.0:
                                tail = min(served, a * dt * y * exp(z))
                                served -= tail
                                drop += tail
                else:  # unavailable (loading or crashed): waits for it, at most the timeout
                    e_part = wc
                x[w] = x1
                rr = r * r
                cd = rr * scv + (1.0 - rr) * ca
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
            dep_op[v] = dep_v
            mean_op[v] = before + sbar
            ca2_op[v] = cd_sum / dep_v if dep_v > 0 else 1.0
            if drops_v > 0:
                cv = c_op[v]
                drop_req[v] = drops_v / cv if cv > 0 else 0.0
                any_drop = True
        # ---- requests
        completed = 0.0
        for v, tv, cv in done:
            completed += tv * dep_op[v] / cv
        dropped = sum(drop_req) if any_drop else 0.0
        inflight = self._inflight + arrivals - dropped - completed
        if inflight < 0:
            completed += inflight
            inflight = 0.0
        self._inflight = inflight
        acc.arrivals += arrivals
        acc.completed += completed
        if any_drop:
            acc.drops["timeout"] += dropped
        acc.comm += comm
        rates_acc = acc.rates
        for i, lv in enumerate(lam_l):
            rates_acc[i] += lv * dt
        if completed > 0:
            mean = 0.0
            for v, tv in tau_pos:
                mean += tv * mean_op[v]
            parts, p_within = self._latency(st, tau_pos)
            acc.add_latency(completed, parts, p_within, e_tail, mean)

    def _crash(self, w: int, down: frozenset[int], acc: _Acc) -> None:
        """Worker ``w`` crashes: the task in service is lost, the queue moves to siblings."""
        cp = self.compiled
        assert cp is not None
        oi = int(cp.w_op[w])
        xw = self.x[w]
        if oi < 0 or xw <= 0:
            return
        lost = min(1.0, xw)
        c = self._c_of(oi)
        acc.drops["crash"] += lost / c
        self._inflight -= lost / c
        self.x[w] = 0.0
        self._move(oi, xw - lost, down, avoid=w)
        if self._move_drops_total:
            acc.drops["no_worker"] += self._move_drops["no_worker"]
            self._inflight -= self._move_drops["no_worker"]
            self._move_drops = empty_drops()
            self._move_drops_total = 0.0

    # ------------------------------------------------------------------ latency

    def _latency(
        self, st: _State, tau_pos: list[tuple[int, float]]
    ) -> tuple[list[tuple[float, np.ndarray, np.ndarray | None]], float]:
        """Terminal operators' latency (lazy parts) and P(end-to-end latency <= bound).

        Per worker, P(sojourn <= t) = G + y (1 - G - exp(-(t - s - D)^+ / E)); an operator mixes
        its workers; a join multiplies its inputs' CDFs; a stage after a join adds (a discrete
        convolution, only evaluated at the bound here: the full CDF waits until percentiles are
        read).

        :meth:`_step` writes per worker of the mixture ``(alpha, 1 / E)`` to ``st.par``, with
        ``alpha = (s + D) / E``, so that the exponent at grid time ``t`` is ``alpha - t / E`` (one
        matrix product instead of a broadcast add and multiply), and its share times ``y`` to
        ``st.wext``. The numpy calls work on a few hundred numbers each, so their count, not their
        size, sets the cost.
        """
        g = st.buf_g
        st.par_np.dot(self._jmat, g)  # alpha - t / E (ndarray.dot: np.dot's dispatch costs)
        # e^-60 is nothing; the clip keeps exp and the products below out of denormal numbers
        _clip(g, _CLIP_LO, _CLIP_HI, g)
        np.exp(g, g)
        np.subtract(st.omg, g, st.stack_top)
        f_op = st.wext_np.dot(st.stack)  # a new array: the lazy percentiles keep its rows
        jb = self.j_bound
        kr = self._k_rows
        needs_full = self._needs_full
        parts: list[tuple[float, np.ndarray, np.ndarray | None]] = []
        within = 0.0
        inputs: dict[int, np.ndarray] = {}  # CDF of the time all inputs of v are there
        for v, parents in self._op_parents:
            before = f_op[parents[0]]
            for u in parents[1:]:
                before = before * f_op[u]
            inputs[v] = before
            if v in needs_full:
                # (rows of earlier operators are final: parents come first in topological order)
                f_op[v] = _conv_half(before, f_op[v])
        for v, tv in tau_pos:
            before = inputs.get(v)
            fv = f_op[v]
            if before is None or v in needs_full:
                parts.append((tv, fv, None))
                within += tv * float(fv[jb])
            else:
                # P(inputs + sojourn <= bound) = before . (K fv), K fixed (see _build_grid)
                parts.append((tv, before, fv))
                within += tv * float(self._k_bound.dot(fv[:kr]).dot(before[:kr]))
        return parts, within

    # ------------------------------------------------------------------ metrics

    def _metrics(self, t0: float, seconds: float, in_flight0: float, acc: _Acc) -> IntervalMetrics:
        cp = self.compiled
        assert cp is not None
        names = self._names if self._names_plan is cp else self._names_for(cp)
        inv = 1.0 / seconds
        busy = acc.busy_w
        dep = acc.dep_w
        waits = acc.wait_w
        x = self.x
        # computed on first access (FluidIntervalMetrics)
        util = lambda: {n: busy[w] * inv for w, n in names}  # noqa: E731
        wait = lambda: {  # noqa: E731
            n: (waits[w] / dep[w] * 1000.0 if dep[w] > 0 else math.nan) for w, n in names
        }
        # plain loops: in Python 3.11 each list comprehension builds a function object
        backlog = {}
        op_util = {}
        for op, ws in self._op_groups:
            b = u = 0.0
            for w in ws:
                b += x[w]
                u += busy[w]
            backlog[op] = b
            op_util[op] = u * inv / len(ws) if ws else 0.0
        rates = {}
        acc_rates = acc.rates
        for i, n in enumerate(self._source_names):
            rates[n] = acc_rates[i] * inv
        lat, within = acc.latency(self.grid)
        reconf, self._pending_reconf = self._pending_reconf, []
        # the attributes the dataclass __init__ would set (the lazy fields under their _lazy_
        # names), without the __init__ call and its property setters: plain attribute stores
        out = _new_object(FluidIntervalMetrics)
        out.t_start = t0
        out.duration = seconds
        out.arrivals = acc.arrivals
        out.completed = acc.completed
        out.within_slo = within
        out.dropped = acc.drops
        out.in_flight_start = in_flight0
        out.in_flight = self._inflight
        out._lazy_latency_ms = lat
        out._lazy_utilization = util
        out._lazy_wait_ms = wait
        out.operator_backlog = backlog
        out.operator_utilization = op_util
        out.compute_dollars = cp.price_charged_per_s * seconds
        out.communication_dollars = acc.comm
        out.rates = rates
        out.reconfigured = reconf
        return out

    def _names_for(self, cp: CompiledPlan) -> list[tuple[int, str]]:
        if self._names_plan is not cp:
            self._names = [(w, n) for w, n in enumerate(cp.workers) if cp.w_op[w] >= 0]
            self._op_groups = [(cp.ops[oi], sorted(ws)) for oi, ws in enumerate(cp.base_weights)]
            self._names_plan = cp
        return self._names

    @property
    def in_flight(self) -> float:
        return self._inflight


class _Acc:
    """Sums over the steps of one interval."""

    __slots__ = (
        "arrivals",
        "completed",
        "comm",
        "drops",
        "dep_w",
        "busy_w",
        "wait_w",
        "rates",
        "_parts",
        "_weight",
        "_within",
        "_e_tail",
        "_mean",
        "cap",
    )

    def __init__(self, n_workers: int, n_sources: int, cap: float) -> None:
        self.cap = cap  # no latency beyond: every queue drops what waited the timeout
        self.arrivals = 0.0
        self.completed = 0.0
        self.comm = 0.0
        self.drops = _NO_DROPS.copy()
        self.dep_w = [0.0] * n_workers
        self.busy_w = [0.0] * n_workers
        self.wait_w = [0.0] * n_workers
        self.rates = [0.0] * n_sources
        self._parts: list[tuple[float, list[tuple[float, np.ndarray, np.ndarray | None]]]] = []
        self._weight = 0.0
        self._within = 0.0
        self._e_tail = 0.0
        self._mean = 0.0

    def total_drops(self) -> float:
        return sum(self.drops.values())

    def add_latency(
        self,
        completed: float,
        parts: list[tuple[float, np.ndarray, np.ndarray | None]],
        p_within: float,
        e_tail: float,
        mean: float,
    ) -> None:
        self._within += completed * p_within
        self._mean += completed * mean
        self._parts.append((completed, parts))
        self._weight += completed
        if e_tail > self._e_tail:
            self._e_tail = e_tail

    def latency(self, grid: np.ndarray) -> tuple[Any, float]:
        """(a function computing the latency figures, requests completed within the bound)."""
        if self._weight <= 0:
            return lambda: {
                "p50": math.nan,
                "p95": math.nan,
                "p99": math.nan,
                "mean": math.nan,
            }, 0.0
        parts, weight, e_tail = self._parts, self._weight, self._e_tail
        mean, cap = self._mean / self._weight, self.cap
        return lambda: _latency_figures(grid, parts, weight, e_tail, mean, cap), self._within


def _latency_figures(
    grid: np.ndarray,
    parts: list[tuple[float, list[tuple[float, np.ndarray, np.ndarray | None]]]],
    weight: float,
    e_tail: float,
    mean_s: float,
    cap: float,
) -> dict[str, float]:
    """p50/p95/p99/mean (ms) of an interval from the fluid's latency CDF on the grid."""
    cdf: np.ndarray | None = None
    for w, terms in parts:
        for tv, a, b in terms:
            part = a if b is None else _conv_half(a, b)
            if cdf is None:
                cdf = (w / weight * tv) * part
            else:
                cdf += (w / weight * tv) * part
    if cdf is None:  # (not reached: a step that completes requests has a terminal part)
        cdf = np.zeros(len(grid))
    out = np.interp(_QUANTILES, cdf, grid).tolist()
    last = float(cdf[-1])
    t_max = float(grid[-1])
    h = float(grid[1])
    # mass beyond the grid: start + Exp(tail), tail = the slowest stage's exponential part,
    # start >= t_max set so that the overall mean matches the fluid's mean latency (which counts
    # deterministic backlog); no request waits more than the timeout in any queue (cap)
    grid_part = h * float((1.0 - cdf[:-1]).sum()) - t_max * (1.0 - last)
    beyond = 1.0 - last
    tail = max(e_tail, h)
    start = t_max
    if beyond > 1e-9:
        start = max(t_max, (mean_s - grid_part) / beyond - tail)
    mean = grid_part + beyond * (start + tail)
    for i, q in enumerate((0.5, 0.95, 0.99)):
        if last < q:
            out[i] = min(start + tail * math.log(beyond / (1.0 - q)), cap)
    return {
        "p50": out[0] * 1000.0,
        "p95": out[1] * 1000.0,
        "p99": out[2] * 1000.0,
        "mean": mean * 1000.0,
    }


def _lazy_field(name: str) -> property:
    key = "_lazy_" + name

    def get(self: IntervalMetrics) -> dict[str, float]:
        value = self.__dict__[key]
        if callable(value):
            value = value()
            self.__dict__[key] = value
        return value

    def put(self: IntervalMetrics, value: Any) -> None:
        self.__dict__[key] = value

    return property(get, put)


class FluidIntervalMetrics(IntervalMetrics):
    """:class:`IntervalMetrics` whose latency percentiles and per-worker figures are computed on
    first access (plain dicts then): a training loop that reads neither pays for neither."""

    latency_ms = _lazy_field("latency_ms")  # type: ignore[assignment]
    utilization = _lazy_field("utilization")  # type: ignore[assignment]
    wait_ms = _lazy_field("wait_ms")  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        for name in ("latency_ms", "utilization", "wait_ms"):
            getattr(self, name)
        return self.__dict__
