"""The sojourn time of a worker with dynamic batching (batch size ``b`` above 1).

Semantics (the DES's, ARCHITECTURE.md "Latency and batching"): Poisson arrivals at rate
``lambda``; a free worker takes up to ``b`` queued tasks, oldest first; with fewer it waits
for more, at most ``tau`` (``batch_timeout_s``) from when it started waiting, then starts with
what it has; a batch of ``n`` takes ``S_n`` (the service fit at ``n``, independent draws).

**The queue at batch completions is an exact Markov chain** (the general bulk-service rule of
Chaudhry & Templeton, *A First Course in Bulk Queues*, 1983, with a service time that depends
on the batch size and a fill timeout): ``X`` = tasks waiting when a batch ends. With
``X >= b`` the next batch takes ``b`` at once; with ``1 <= X < b`` it waits for
``min(b - X, Poisson(lambda tau))`` more (all of ``b`` if they come before the timeout); with
``X = 0`` it first waits for one arrival. Then ``X' = (left behind) + A``, ``A`` the arrivals
during the batch's service (Poisson with a random mean ``lambda S_n``: quadrature over ``S_n``).
:class:`_Chain` solves for its stationary law (a banded linear system, the states truncated
where their mass is below 1e-12), and from it the mean batch size and the busy fraction.

**A tagged task's sojourn** follows by PASTA (it sees the time-average state):

* it arrives while a batch of ``n`` runs (left behind ``Q``; ``Q > 0`` only when ``n = b``),
  at elapsed time ``e`` with ``R`` left: ``A1 ~ Poisson(lambda e)`` came before it in this
  service, ``A2 ~ Poisson(lambda R)`` after; its position is ``j = Q + A1 + 1``. If
  ``j <= b`` it is in the next batch; that batch starts at the completion with ``X = j + A2``
  waiting (at once if ``X >= b``, else after the fill wait) — exact. If ``j > b`` it waits
  for ``k = ceil(j / b) - 1`` full batches first and its own batch is taken as full
  (approximate: it is at least nearly full at such loads);
* it arrives while the worker is idle or waiting for a batch to fill: it joins the batch
  being formed (its remaining fill wait is taken as a full timeout: conservative by at most
  ``tau``).

**Arrivals in groups** (a worker fed by batching workers, whose batches' outputs leave
together; :mod:`~jbrl.planning.latency.groups`, :mod:`~jbrl.planning.latency.feeders`): the
tasks come in Poisson groups of law ``g``. The chain is the same with compound-Poisson counts
(FFT of the generating function), a group that completes a forming batch may leave tasks behind
it (``X' = L + A``), and an empty queue waits for a group, not a task. The tagged task sees the
time-average state at its group's arrival (PASTA for the group epochs) and has ``u`` tasks of
its own group ahead of it and ``v`` behind (its group size-biased, its place uniform): ``j``
adds ``u``, ``X`` adds ``u + v``; tasks of a group beyond ``b`` wait for full batches. Groups
from a busy sender come about one service apart, more regularly than Poisson: with the group
epochs' SCV ``ca2 < 1``, the time a task waits behind others (``R`` and the full batches ahead)
is scaled by the QNA factor of :func:`_kingman`; fill waits and the own service are kept (an
approximation, measured against the DES in ``tests/planning/test_groups.py`` and
``experiments/results/batching.md``).

So ``T = R + [fill wait] + S_own`` or ``T = R + S_b * k + S_b``: computed as a distribution on
an equally spaced grid of times (cell masses; sums are FFT convolutions), with ``(s, e)``
integrated by quadrature (service nodes times 16 points of the elapsed fraction). The result
is a :class:`GridSojourn`. Its errors against the DES are measured on a grid of cases in
``experiments/bench_batching.py`` (results in ``experiments/results/batching.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from jbrl.planning.latency.groups import POISSON, Arrivals, poisson_rows
from jbrl.planning.latency.service import BatchService, ServiceFit, service_cdf
from jbrl.planning.latency.sojourn import Sojourn

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / _GH_W.sum()
_LAG_X, _LAG_W = np.polynomial.laguerre.laggauss(24)
_U = (np.arange(16) + 0.5) / 16  # elapsed fractions of a service (midpoints)
GRID_CELLS = 2048
"""Cells of a batched sojourn's time grid."""
TAIL_MASS = 1e-9
"""Stationary mass left beyond the truncated chain."""


def service_nodes(f: ServiceFit) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights of the service time ``S``: Gauss-Hermite over ``ln S``
    (lognormal), Gauss-Laguerre (exponential), one node (fixed)."""
    if f.fixed:
        return np.array([f.mean_s]), np.array([1.0])
    if f.family == "exponential":
        return _LAG_X * f.mean_s, _LAG_W
    return np.exp(f.log_median + f.sigma * _GH_X), _GH_W


_poisson = poisson_rows


def mixed_counts(f: ServiceFit, arr: Arrivals, kmax: int) -> np.ndarray:
    """P(A = k), k = 0..kmax, for the arrivals ``A`` during one service ``S``."""
    s, w = service_nodes(f)
    return w @ arr.counts(s, kmax)


@dataclass
class _Chain:
    """The queue at batch completions (module docstring): its stationary law ``pi`` over
    0..K, and per state ``X < b`` the batch that follows: ``starts[X, n, L]`` = P(size ``n``,
    ``L`` left waiting behind it) (``L > 0`` only with groups that overfill it)."""

    bs: BatchService
    arr: Arrivals
    b: int
    tau: float
    pi: np.ndarray = field(init=False)
    starts: np.ndarray = field(init=False)  # (b, b+1, L+1)
    fill: np.ndarray = field(init=False)  # (b,): mean fill wait after X (idle time apart)

    @property
    def lam(self) -> float:
        return self.arr.lam

    def __post_init__(self) -> None:
        b, lam = self.b, self.lam
        self.fits = [self.bs.fit(n) if n else self.bs.fit(1) for n in range(b + 1)]
        m = np.array([f.mean_s for f in self.fits])
        var = np.array([f.scv * f.mean_s**2 for f in self.fits])
        am = self.arr.count_variance(float(m[b]), float(var[b]))  # arrivals in a service
        amax = int(lam * m[b] + 12.0 * math.sqrt(am) + 20 + len(self.arr.g))
        self.a = np.array([mixed_counts(f, self.arr, amax) for f in self.fits])
        self.starts, self.fill = self._fills(b)
        rho = lam * m[b] / b
        eq = (rho * self.arr.mean_g + b * self.fits[b].scv + b) / (2.0 * (1.0 - rho))
        K = int(max(4 * b + amax, 25.0 * eq + 2 * b))
        while True:
            pi = self._solve(K)
            if pi[-4 * b :].sum() < TAIL_MASS or K > 200_000:
                break
            K *= 2
        self.pi = pi
        self.K = len(pi) - 1

    def _fills(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """For X = 0..b-1 waiting at a completion: the law of the next batch's size and of the
        tasks left behind, and the mean fill wait (X = 0 counts from the first group)."""
        arr, tau = self.arr, self.tau
        lmax = max(len(arr.g) - 2, 0)
        starts = np.zeros((b, b + 1, lmax + 1))
        fill = np.zeros(b)
        starts[0], fill[0] = arr.after_idle(b, tau)
        for x in range(1, b):
            starts[x], fill[x] = arr.fill(x, b, tau)
        return starts, fill

    def _solve(self, K: int) -> np.ndarray:
        """Stationary law over X = 0..K, transitions beyond K cut off (each row renormalised;
        :meth:`__post_init__` grows K until that mass is negligible): pi_0 = 1, then the banded
        balance equations of states 1..K (M[x', x] = P[x, x'] - delta), then normalised."""
        b, a = self.b, self.a
        amax = a.shape[1] - 1
        lmax = self.starts.shape[2] - 1
        lo, up = amax + lmax, b
        ab = np.zeros((lo + up + 1, K))
        # columns x >= b: X' = x - b + A_b
        xs = np.arange(b, K + 1)
        csum = np.cumsum(a[b])
        kept = csum[np.minimum(K - (xs - b), amax)]
        for k in range(amax + 1):
            ok = xs - b + k <= K
            ab[up - b + k, xs[ok] - 1] = a[b][k] / kept[ok]
        rhs = np.zeros(K)
        for x in range(min(b, K + 1)):  # x < b: the batch that follows depends on x
            row = np.zeros(K + 1 + lmax + amax)
            st = self.starts[x]
            for n, left in zip(*np.nonzero(st), strict=True):
                row[left : left + amax + 1] += st[n, left] * a[n]
            row = row[: K + 1] / row[: K + 1].sum()
            if x == 0:
                rhs -= row[1:]
                continue
            nz = np.nonzero(row[1:])[0] + 1
            ab[up + nz - x, x - 1] += row[nz]
        ab[up, :] -= 1.0
        from scipy.linalg import solve_banded  # (lazy: scipy costs 0.3 s to import)

        sol = solve_banded((lo, up), ab, rhs)
        pi = np.concatenate([[1.0], np.maximum(sol, 0.0)])
        return pi / pi.sum()

    # ------------------------------------------------------------------ figures

    def batch_law(self) -> tuple[np.ndarray, np.ndarray]:
        """Per batch (over batches): P(size n) for n = 0..b, and P(size b, left behind Q)."""
        b, pi = self.b, self.pi
        low = min(b, len(pi))
        lead = np.einsum("x,xnl->nl", pi[:low], self.starts[:low])
        size = lead.sum(axis=1)
        size[b] += pi[b:].sum()
        full_q = np.zeros(max(len(pi), lead.shape[1]))
        full_q[: lead.shape[1]] += lead[b]
        full_q[: len(pi) - b] += pi[b:]
        return size, full_q

    def cycle_parts(self) -> tuple[float, float, float]:
        """Mean idle time, fill wait and service per batch."""
        b, pi = self.b, self.pi
        size, _ = self.batch_law()
        m = np.array([f.mean_s for f in self.fits])
        idle = pi[0] / self.arr.lam_g
        low = min(b, len(pi))
        fill = float(pi[:low] @ self.fill[:low])
        return idle, fill, float(size @ m)


@dataclass(frozen=True, eq=False)
class GridSojourn(Sojourn):
    """A sojourn time given by its distribution on an equally spaced grid (cell ``i`` holds
    the mass of ``[(i - 1/2) h, (i + 1/2) h)``), with an exponential tail beyond it."""

    rate: float
    utilization: float
    stable: bool
    mean_batch: float
    h: float = 0.0
    pmf: np.ndarray = field(default_factory=lambda: np.zeros(1))
    tail_e: float = 1.0  # mean of the exponential tail beyond the grid
    batch_law: np.ndarray = field(default_factory=lambda: np.ones(1))
    """P(a batch holds n tasks), n = 0..b (over batches)"""

    @property
    def mean_s(self) -> float:
        if not self.stable:
            return math.inf
        beyond = max(0.0, 1.0 - float(self.pmf.sum()))
        end = len(self.pmf) * self.h
        return float(self.pmf @ (np.arange(len(self.pmf)) * self.h)) + beyond * (end + self.tail_e)

    def upper_s(self) -> float:
        c = np.cumsum(self.pmf)
        i = int(np.searchsorted(c, 1.0 - 1e-4))
        return (min(i, len(c)) + 1) * self.h

    def cdf(self, t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=float))
        if not self.stable:
            return np.zeros(t.shape)
        c = np.cumsum(self.pmf)
        edges = (np.arange(len(c)) + 0.5) * self.h  # c[i] = P(T < edge i)
        out = np.interp(t, np.concatenate([[-0.5 * self.h], edges]), np.concatenate([[0.0], c]))
        end = edges[-1]
        far = t > end
        if far.any():
            out[far] = 1.0 - (1.0 - c[-1]) * np.exp(-(t[far] - end) / self.tail_e)
        return np.clip(out, 0.0, 1.0)


def _lattice(f: ServiceFit, h: float, n: int) -> np.ndarray:
    """Cell masses of a service time on the grid (cell i: [(i - 1/2) h, (i + 1/2) h))."""
    edges = (np.arange(n + 1) - 0.5) * h
    c = service_cdf(f, edges)
    return np.diff(c)


def _conv(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` terms of the convolution of two pmfs (FFT)."""
    size = 1 << (2 * n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(y, size), size)[:n]
    return np.maximum(out, 0.0)


def batch_sojourn(
    bs: BatchService,
    lam: float,
    b: int,
    tau: float,
    arrival_scv: float = 1.0,
    groups: tuple[float, ...] | None = None,
) -> Sojourn:
    """The sojourn of a worker with service fits ``bs`` serving batches of at most ``b`` at
    arrival rate ``lam`` with fill timeout ``tau`` (module docstring; cached: 20-100 ms each).
    ``groups``: the law of the arrivals' group sizes (``groups[k]`` = P(a group holds ``k``
    tasks); None: single tasks), for a worker fed by batching workers
    (:func:`~jbrl.planning.latency.feeders.feeder_groups`). ``arrival_scv``: the SCV of the
    group epochs; below 1 (groups from a busy sender, about one service apart) the time before
    the own batch starts is scaled by Kingman's factor ``theta = (ca2 + cs2) / (1 + cs2)``
    (``cs2``: the full batch's service SCV) with Kraemer & Langenbach-Belz's correction for
    smooth arrivals (:func:`_kingman`), as QNA scales a G/G/1 wait: the residual
    service and the full batches ahead of a task take ``theta`` times as long (the fill
    waits and the own batch's service are kept). Above 1 it is not used."""
    g = POISSON if groups is None or len(groups) <= 2 else tuple(float(x) for x in groups)
    ca2 = min(max(float(arrival_scv), 0.0), 1.0)
    return _batch_sojourn(bs, float(lam), int(b), float(tau), g, ca2)


@lru_cache(maxsize=4096)
def _batch_sojourn(
    bs: BatchService,
    lam: float,
    b: int,
    tau: float,
    groups: tuple[float, ...] = POISSON,
    ca2: float = 1.0,
) -> Sojourn:
    fb = bs.fit(b)
    if lam <= 0:
        lam = 1e-12
    if lam * fb.mean_s / b >= 1.0:
        law = np.zeros(b + 1)
        law[b] = 1.0
        return GridSojourn(lam, 1.0, False, float(b), batch_law=law)
    chain = _Chain(bs, Arrivals(lam, np.asarray(groups)), b, tau)
    idle, fill, service = chain.cycle_parts()
    size, full_q = chain.batch_law()
    cycle = idle + fill + service
    nbar = float(size @ np.arange(b + 1))
    busy = service / cycle
    return _tagged(chain, size, full_q, cycle, busy, nbar, _kingman(ca2, fb.scv, busy))


def _kingman(ca2: float, cs2: float, rho: float) -> float:
    """The factor on a G/G/1 wait against the M/G/1 one at arrival SCV ``ca2 <= 1``: Kingman's
    ``(ca2 + cs2) / (1 + cs2)`` times Kraemer & Langenbach-Belz's correction for smooth
    arrivals ``exp(-2 (1 - rho) (1 - ca2)^2 / (3 rho (ca2 + cs2)))`` (as in Whitt's QNA, 1983)."""
    if ca2 >= 1.0:
        return 1.0
    klb = math.exp(-2.0 * (1.0 - rho) * (1.0 - ca2) ** 2 / (3.0 * max(rho, 1e-9) * (ca2 + cs2)))
    return min(1.0, (ca2 + cs2) / (1.0 + cs2) * klb)


@lru_cache(maxsize=4096)
def batch_size_law(bs: BatchService, lam: float, b: int, tau: float) -> tuple[np.ndarray, float]:
    """P(a batch holds ``n`` tasks), n = 0..b, and the busy fraction of a worker with Poisson
    arrivals (as :func:`batch_sojourn`, from the chain alone: a few ms, without the sojourn's
    grid); full batches and 1 beyond its capacity."""
    if lam * bs.fit(b).mean_s / b >= 1.0:
        return np.eye(b + 1)[b], 1.0
    chain = _Chain(bs, Arrivals(max(lam, 1e-12)), b, tau)
    idle, fill, service = chain.cycle_parts()
    size, _ = chain.batch_law()
    return size / size.sum(), service / (idle + fill + service)


def _tagged(
    chain: _Chain,
    size: np.ndarray,
    full_q: np.ndarray,
    cycle: float,
    busy: float,
    nbar: float,
    theta: float = 1.0,
) -> GridSojourn:
    """The tagged task's sojourn on a grid (module docstring); ``theta``: the factor on the
    time a task waits behind others (:func:`batch_sojourn`)."""
    b, lam, tau, fits = chain.b, chain.lam, chain.tau, chain.fits
    gmax = len(chain.arr.g) - 1
    kmax = int(np.searchsorted(np.cumsum(full_q[::-1])[::-1] < 1e-9, True) + gmax - 1) // b + 2
    # the grid spans the longest sojourn that matters: k full batches ahead sum to about
    # k E[S_b] (+ 8 standard deviations), plus one service as long as _far, the fill waits and
    # the own batch (a span of k * _far would make the cells too coarse for the mean when the
    # queue is long and the service spread wide)
    smax = max(_far(f) for f in fits[1:])
    sd_b = math.sqrt(fits[b].scv) * fits[b].mean_s
    span = (kmax + 2) * fits[b].mean_s + 8.0 * math.sqrt(kmax + 1) * sd_b + smax + tau * 2
    span = min(span, smax * (kmax + 2) + tau * 2 + fits[b].mean_s)
    n = GRID_CELLS
    h = span / n
    # R-masses per class: X = 1..b-1 (fill from X), X >= b (index b), overflow k = 1..kmax
    g = np.zeros((b + 1, n))
    over = np.zeros((kmax + 1, n))
    _during_service(chain, size, full_q, cycle, h, g, over)
    _while_free(chain, cycle, g, over)
    lat = [_lattice(f, h, n) for f in fits]
    out = _conv(_scaled(g[b], theta), lat[b], n)
    for x in range(1, b):
        if g[x].any():
            out += _conv(_scaled(g[x], theta), _fill_then_serve(chain, x, lat, h, n), n)
    acc = np.zeros(n)
    for k in range(kmax, 0, -1):  # Horner: sum_k over_k * S_b^(k) then * S_b
        acc = _conv(acc + over[k], lat[b], n) if (acc.any() or over[k].any()) else acc
    if acc.any():
        out += _conv(_scaled(acc, theta), lat[b], n)
    tail_e = max(fits[b].mean_s, h)
    return GridSojourn(lam, busy, True, nbar, h, out, tail_e, size)


def _scaled(pmf: np.ndarray, theta: float) -> np.ndarray:
    """The cell masses of ``theta X`` from those of ``X`` (each cell's mass split between the
    two cells around its scaled time)."""
    if theta >= 1.0:
        return pmf
    x = np.arange(len(pmf)) * theta
    lo = np.floor(x).astype(int)
    f = x - lo
    out = np.bincount(lo, pmf * (1.0 - f), len(pmf))
    out += np.bincount(np.minimum(lo + 1, len(pmf) - 1), pmf * f, len(pmf))
    return out


def _far(f: ServiceFit) -> float:
    """A service time beyond which at most about 1e-9 of its mass lies."""
    if f.fixed:
        return f.mean_s
    if f.family == "exponential":
        return f.mean_s * 21.0
    return math.exp(f.log_median + 6.0 * f.sigma)


def _during_service(
    chain: _Chain,
    size: np.ndarray,
    full_q: np.ndarray,
    cycle: float,
    h: float,
    g: np.ndarray,
    over: np.ndarray,
) -> None:
    """Arrivals while a batch runs: for each batch size, service node and elapsed fraction,
    the law of the position ``j`` and of the queue ``X`` at completion (module docstring),
    added to the R-masses ``g`` (per X class) and ``over`` (per overflow k). With groups, ``j``
    adds the tasks ahead in the tagged task's own group and ``X`` those behind it too."""
    b, arr = chain.b, chain.arr
    kmax = over.shape[0] - 1
    n = g.shape[1]
    own = arr.own_group()  # (u ahead, v behind)
    p_u = own.sum(axis=1)
    rows: list[np.ndarray] = []  # flat cell indices into g (X classes) ...
    vals: list[np.ndarray] = []  # ... and their masses
    orows: list[np.ndarray] = []
    ovals: list[np.ndarray] = []
    for nsz in range(1, b + 1):
        p_batch = size[nsz]
        if p_batch <= 0:
            continue
        s_nodes, s_w = _tag_nodes(chain.fits[nsz])
        qlaw = np.ones(1)
        if nsz == b and full_q.sum() > 0:
            qlaw = full_q / full_q.sum()
            qlaw = qlaw[: int(np.nonzero(qlaw > 1e-13)[0].max()) + 1]
        for s, ws in zip(s_nodes, s_w, strict=True):
            r = s * _U
            w = p_batch * ws * s / len(_U) / cycle  # time-average weight per (s, u)
            sd = math.sqrt(arr.count_variance(s, 0.0) + 1.0)
            jmax = len(qlaw) + len(p_u) - 1 + int(arr.lam * s + 10 * sd + 5)
            base = arr.counts(s - r, jmax)  # (U, jmax + 1): tasks of earlier groups ...
            if len(qlaw) > 1:
                base = _conv_rows(base, qlaw, jmax + 1)  # ... plus those left behind
            after = arr.counts(r, b)  # arrivals in the rest of the service
            cell = np.minimum(np.rint(r / h).astype(int), n - 1)
            mass = np.zeros((len(_U), b))
            # the law of j - 1 = base + u (u: the tasks ahead in the own group)
            jpos = base if len(p_u) == 1 else _conv_rows(base, p_u, jmax + 1)
            for u in range(min(len(p_u), b)):
                if p_u[u] <= 0:
                    continue
                ju = np.zeros((len(_U), b))  # base + u, its first b terms (j <= b)
                ju[:, u:] = base[:, : b - u]
                # X - 1 = (j - 1) + v + A2 for j <= b; X < b: fill classes, else class b
                kern = _conv_rows(after, own[u], b)
                xlaw = _conv_rows(ju, kern, b)
                mass[:, : b - 1] += xlaw[:, : b - 1]
                mass[:, b - 1] += p_u[u] * ju.sum(1) - xlaw[:, : b - 1].sum(1)
            cls = np.empty((len(_U), b), dtype=int)
            cls[:, : b - 1] = np.arange(1, b)
            cls[:, b - 1] = b
            rows.append((cls * n + cell[:, None]).ravel())
            vals.append((w * mass).ravel())
            if jpos.shape[1] > b:
                # j - 1 in [k b, (k + 1) b): k full batches ahead (k beyond kmax: kmax)
                cols = jpos[:, b:]
                m = -(-cols.shape[1] // b)
                sums = np.pad(cols, ((0, 0), (0, m * b - cols.shape[1])))
                sums = sums.reshape(len(_U), m, b).sum(axis=2)
                per_k = np.zeros((len(_U), kmax + 1))
                per_k[:, 1 : min(m, kmax) + 1] = sums[:, :kmax]
                per_k[:, kmax] += sums[:, kmax:].sum(axis=1)
                orows.append((np.arange(kmax + 1)[None, :] * n + cell[:, None]).ravel())
                ovals.append((w * per_k).ravel())
    if rows:
        g += np.bincount(np.concatenate(rows), np.concatenate(vals), g.size).reshape(g.shape)
    if orows:
        over += np.bincount(np.concatenate(orows), np.concatenate(ovals), over.size).reshape(
            over.shape
        )


_GH8_X, _GH8_W = np.polynomial.hermite_e.hermegauss(8)
_GH8_W = _GH8_W / _GH8_W.sum()
_LAG8_X, _LAG8_W = np.polynomial.laguerre.laggauss(8)


def _tag_nodes(f: ServiceFit) -> tuple[np.ndarray, np.ndarray]:
    """Service nodes for the tagged task's residual (fewer than the chain's: 8)."""
    if f.fixed:
        return np.array([f.mean_s]), np.array([1.0])
    if f.family == "exponential":
        return _LAG8_X * f.mean_s, _LAG8_W
    return np.exp(f.log_median + f.sigma * _GH8_X), _GH8_W


def _conv_rows(rows: np.ndarray, kernel: np.ndarray, n: int) -> np.ndarray:
    """Each row convolved with ``kernel`` (one row each, or one for all), first ``n`` terms."""
    size = 1 << (rows.shape[1] + kernel.shape[-1]).bit_length()
    out = np.fft.irfft(np.fft.rfft(rows, size) * np.fft.rfft(kernel, size), size)[..., :n]
    return np.maximum(out, 0.0)


def _while_free(chain: _Chain, cycle: float, g: np.ndarray, over: np.ndarray) -> None:
    """Arrivals while the worker is idle or filling a batch join the batch being formed
    (R = 0): idle -> its group starts one (at once with ``b`` if it holds that many; tasks
    beyond ``b`` wait for full batches); filling from ``c`` waiting -> from ``c`` plus its
    group (the full timeout again: conservative)."""
    b, arr, tau, pi = chain.b, chain.arr, chain.tau, chain.pi
    lg = arr.lam_g
    # time-average weight of each count c already waiting when a group arrives (R = 0)
    have = np.zeros(b)
    have[0] = pi[0] / lg / cycle  # idle
    if tau > 0:
        start = np.zeros(b)  # P(a fill starts from c) per cycle
        start[1 : min(b, len(pi))] += pi[1 : min(b, len(pi))]
        first = np.zeros(b)  # after an idle spell: a fill from the first group's size
        top = min(b, len(arr.g))
        first[:top] = arr.g[:top]
        start[1:] += pi[0] * first[1:]
        for c0 in range(1, b):
            if start[c0] <= 0:
                continue
            u, _, p_gt = arr.fill_paths(b - c0, tau)
            have[c0:] += start[c0] * (p_gt[: b - c0] @ u[: b - c0]) / lg / cycle
    own = arr.own_group()
    for c in range(b):
        if have[c] <= 0:
            continue
        for u, v in zip(*np.nonzero(own), strict=True):
            total = c + u + v + 1
            pos = c + u + 1
            wt = have[c] * own[u, v]
            if total < b:
                g[total, 0] += wt
            elif pos <= b:
                g[b, 0] += wt
            else:
                over[min((pos - 1) // b, over.shape[0] - 1), 0] += wt


def _fill_then_serve(chain: _Chain, x: int, lat: list[np.ndarray], h: float, n: int) -> np.ndarray:
    """The law of (fill wait + service) of a batch formed from ``x`` waiting tasks: with the
    timeout, it fills within ``tau`` (the arrival time of the group that completes it, size
    b) or starts at ``tau`` with ``x`` plus what came; without, it starts at once with ``x``."""
    b, tau = chain.b, chain.tau
    if tau <= 0:
        return lat[x]
    dens, late_k = chain.arr.fill_time(x, b, tau, h, n)
    out = np.zeros(n)
    late = np.zeros(n)
    for i, p in enumerate(late_k):
        late += p * lat[x + i]
    shift = int(round(tau / h))
    if shift < n:
        out[shift:] += late[: n - shift]
    if dens.any():
        out += _conv(dens, lat[b], n)
    return out
