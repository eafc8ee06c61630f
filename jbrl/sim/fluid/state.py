"""What the fluid simulator precomputes per (plan, unavailable workers, link slow-downs).

:func:`plan_state` resolves the compiled plan's routing into per-operator rows that the step
reads (:class:`PlanState`): each worker's share, service rate and SCV, where it sits in the
latency mixture, its inbound transfer time, the QNA terms of its arrival variability, and the
service-plus-transfer CDFs on the latency grid.
"""

from __future__ import annotations

import array
from dataclasses import dataclass, field

import numpy as np

from jbrl.planning.latency import service_cdf
from jbrl.scenario.model import Scenario
from jbrl.sim.compiled import CompiledPlan, Routing
from jbrl.sim.faults import FaultSchedule
from jbrl.sim.fluid.batching import BRow, batch_rows

ArrivalScv = tuple[float, list[tuple[int, float]]]
"""A worker's arrival SCV = const + sum(coef * departure SCV of sender worker)."""

Row = tuple[int, float, float, float, float, int, int, float, float, list[tuple[int, float]], float]
"""Per worker of an operator: (worker, share, mu, service SCV, mean service, 2 x position in the
latency mixture (-1 if no share), position in :attr:`PlanState.wext` (-1 if no share), mean
service + inbound transfer, the arrival SCV terms of :data:`ArrivalScv`, and the service's
normalised third moment :attr:`~jbrl.planning.latency.ServiceFit.a3`)."""

OpStep = tuple[
    bool, int, int, float, list[tuple[int, int, int, float]], list[Row], list[int], list[BRow]
]
"""Per operator, what the step reads, unpacked in one go (attribute look-ups and tuple indexing
cost more than the arithmetic): (join, first input's edge index, sender (-1 - source index for a
source), ratio, inputs as (position, edge index, sender, ratio), rows of its batch-1 workers,
workers, rows of its batching workers (:mod:`~jbrl.sim.fluid.batching`))."""


@dataclass
class OpSpec:
    """Per operator, for one routing state (aligned lists over the operator's workers)."""

    workers: list[int]
    shares: list[float]
    mu: list[float]  # 1 / mean service (0 while unavailable)
    k: list[float]
    m: list[float]
    a3: list[float]  # normalised third moment of the service (the wait's shape)
    in_edges: list[tuple[int, int, float, float]]  # (edge index, u, ratio, kb)
    join: bool
    lat_pos: list[int]  # position in the latency mixture, -1 if no share
    rows: list[Row] = field(default_factory=list)
    brows: list[BRow] = field(default_factory=list)
    # per worker: arrival SCV terms when the primary input (the one whose routing picks the
    # worker) dominates the timing
    ca_pairs: list[ArrivalScv] = field(default_factory=list)


@dataclass
class PlanState:
    """Precomputed per (plan, availability, link slow-downs)."""

    ops: list[OpSpec]
    dep_workers: list[int]  # workers in the latency mixture, in order
    wmix: np.ndarray  # (n_ops, n_dep) operator shares
    base_op: np.ndarray  # (n_ops, N) wmix @ G: sojourn CDF when nobody waits
    omg: np.ndarray  # (n_dep, N) 1 - G, G = P(service + inbound transfer <= t)
    comm: list[float]  # $ per v-task on each edge (mean over senders, by share)
    steps: list[OpStep] = field(init=False)  # see OpStep

    # latency scratch (see the step module): small numpy calls cost mostly overhead, so
    # nothing is allocated per step but the result
    par: array.array[float] = field(init=False)  # (alpha, 1 / E) per dep worker
    par_np: np.ndarray = field(init=False)  # (n_dep, 2) view of par
    buf_g: np.ndarray = field(init=False)  # (n_dep, N) exponent, then exp
    stack: np.ndarray = field(init=False)  # (n_dep + n_ops, N): 1 - G - exp; base_op
    stack_top: np.ndarray = field(init=False)  # (n_dep, N) view of stack: 1 - G - exp
    wext: array.array[float] = field(init=False)  # (n_ops, n_dep + n_ops), row-major
    wext_np: np.ndarray = field(init=False)  # view of wext: [wmix * y | I]

    def __post_init__(self) -> None:
        steps = []
        for o in self.ops:
            e0, u0, r0, _kb = o.in_edges[0]
            ins = [(i, e, u, r) for i, (e, u, r, _kb) in enumerate(o.in_edges)]
            steps.append((o.join, e0, u0, r0, ins, o.rows, o.workers, o.brows))
        self.steps = steps
        nd, (n_ops, n) = len(self.dep_workers), self.base_op.shape
        # the step writes the parameters straight into numpy's memory (array.array items take
        # Python floats as fast as a list; converting a list to an array costs ~1 us a step)
        self.par = array.array("d", bytes(16 * nd))
        self.par_np = np.frombuffer(self.par, dtype=float).reshape(nd, 2)
        self.buf_g = np.empty((nd, n))
        # operator CDFs = [wmix * y | I] @ [1 - G - exp; base_op]: one product adds base_op too;
        # the step writes share * y of each worker of the mixture at its wpos (a worker's column
        # is nonzero in its operator's row only, as in wmix)
        self.stack = np.empty((nd + n_ops, n))
        self.stack[nd:] = self.base_op
        self.stack_top = self.stack[:nd]
        wext = np.zeros((n_ops, nd + n_ops))
        wext[:, nd:] = np.eye(n_ops)
        self.wext = array.array("d", wext.tobytes())
        self.wext_np = np.frombuffer(self.wext, dtype=float).reshape(n_ops, nd + n_ops)


class LinkSlowdowns:
    """The slow-down factor of each (sender, receiver) link at one time, from a fault schedule."""

    def __init__(
        self, scenario: Scenario, cp: CompiledPlan, faults: FaultSchedule, t: float | None
    ) -> None:
        self.scenario, self.cp, self.faults, self.t = scenario, cp, faults, t

    def factor(self, sender: int, receiver: int) -> float:
        if self.t is None or not self.faults.slowdowns:
            return 1.0
        cp = self.cp
        return self.faults.link_factor(
            self.scenario, cp.sender_name(sender), cp.workers[receiver], self.t
        )


def plan_state(
    cp: CompiledPlan, down: frozenset[int], slow: LinkSlowdowns, grid: np.ndarray
) -> PlanState:
    """The :class:`PlanState` of ``cp`` while the workers in ``down`` are unavailable, with the
    link slow-downs of ``slow``, on the latency ``grid``."""
    routing = cp.routing(down)
    ops = _operator_specs(cp, routing, down)
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
    t_in, comm = _transfers(cp, routing, ops, dep, slow)
    table = np.zeros((len(dep), len(grid)))
    for i, w in enumerate(dep):
        if cp.batch[w] == 1:  # (a batching worker's sojourn is added by the step)
            table[i] = service_cdf(cp.fit_of(w), grid - t_in[w])
    table[table < 1e-30] = 0.0  # no denormal numbers in the products of CDFs
    for oi, o in enumerate(ops):
        o.ca_pairs = arrival_scv_terms(cp, routing, ops, oi)
    for oi, o in enumerate(ops):
        o.rows = _rows(o, oi, len(dep) + len(ops), t_in, cp.batch)
        o.brows = batch_rows(
            cp, o.workers, o.shares, down, t_in, grid, _senders(cp, routing, ops, oi)
        )
    return PlanState(ops, dep, wmix, wmix @ table, 1.0 - table, comm)


def _operator_specs(cp: CompiledPlan, routing: Routing, down: frozenset[int]) -> list[OpSpec]:
    ops: list[OpSpec] = []
    for oi in range(len(cp.ops)):
        ws = list(cp.base_weights[oi])
        ws.sort()
        share_of = dict(
            zip(routing.op_workers[oi].tolist(), routing.op_share[oi].tolist(), strict=True)
        )
        fits = [cp.fit_of(w) for w in ws]
        in_edges = [(ed.index, ed.u, ed.ratio, ed.kb) for ed in cp.in_edges[oi]]
        ops.append(
            OpSpec(
                workers=ws,
                shares=[share_of.get(w, 0.0) for w in ws],
                mu=[0.0 if w in down else 1.0 / f.mean_s for w, f in zip(ws, fits, strict=True)],
                k=[f.k for f in fits],
                a3=[f.a3 for f in fits],
                m=[f.mean_s for f in fits],
                in_edges=in_edges,
                join=len(in_edges) > 1,
                lat_pos=[],
            )
        )
    return ops


def _transfers(
    cp: CompiledPlan, routing: Routing, ops: list[OpSpec], dep: list[int], slow: LinkSlowdowns
) -> tuple[dict[int, float], list[float]]:
    """Inbound transfer time per worker of the mixture (max over its input edges of the
    sender-weighted mean), and $ per v-task on each edge (mean over senders, by share)."""
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
                f = slow.factor(sid, b)
                cost += p * ed.kb * lk.dollars_per_kb
                if b in t_in and sid in sender_share:
                    acc = per_recv.setdefault(b, [0.0, 0.0])
                    wgt = sender_share[sid] * p
                    acc[0] += wgt * lk.seconds(ed.kb, f)
                    acc[1] += wgt
            per_sender_cost[sid] = cost
        comm[ed.index] = sum(sender_share.get(sid, 0.0) * c for sid, c in per_sender_cost.items())
        for b, (num, den) in per_recv.items():
            if den > 0:
                t_in[b] = max(t_in[b], num / den)
    return t_in, comm


def _rows(o: OpSpec, oi: int, row_len: int, t_in: dict[int, float], batch: list[int]) -> list[Row]:
    """The step's per-worker rows of operator ``oi``'s batch-1 workers (see :data:`Row`)."""
    return [
        (
            w,
            sh,
            mu,
            2.0 * k - 1.0,
            m,
            2 * li if li >= 0 else -1,
            oi * row_len + li if li >= 0 else -1,
            m + t_in.get(w, 0.0),
            const,
            terms,
            a3,
        )
        for w, sh, mu, k, m, li, (const, terms), a3 in zip(
            o.workers, o.shares, o.mu, o.k, o.m, o.lat_pos, o.ca_pairs, o.a3, strict=True
        )
        if batch[w] == 1
    ]


def _senders(
    cp: CompiledPlan, routing: Routing, ops: list[OpSpec], oi: int
) -> dict[int, tuple[float, dict[int, float]]]:
    """The workers on operator ``oi``'s primary input (an edge of ratio 1; none from a
    source): per sender its share and its routing probabilities per receiver."""
    ed = cp.in_edges[oi][0] if cp.in_edges[oi] else None
    if (
        ed is None
        or ed.u < 0
        or ed.ratio != 1.0
        or not any(cp.batch[w] > 1 for w in ops[oi].workers)
    ):
        return {}
    o_u = ops[ed.u]
    return {
        a: (sa, cp.receiver_probs(routing, ed, a))
        for a, sa in zip(o_u.workers, o_u.shares, strict=True)
        if sa > 0
    }


def arrival_scv_terms(
    cp: CompiledPlan, routing: Routing, ops: list[OpSpec], oi: int
) -> list[ArrivalScv]:
    """QNA split and merge for the primary input: receiver b gets from sender a the flow
    share(a) p(a, b); thinning by p gives p c^2 + 1 - p; merging averages by flow."""
    o = ops[oi]
    ed = cp.in_edges[oi][0]
    out: list[ArrivalScv] = []
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
