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
from scipy.linalg import solve_banded
from scipy.special import gammaln, pdtr

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


def _poisson(mu: np.ndarray, kmax: int) -> np.ndarray:
    """Poisson pmfs, one row per mean in ``mu``, over 0..kmax."""
    k = np.arange(kmax + 1)
    mu = np.maximum(np.asarray(mu, dtype=float), 1e-300)[:, None]
    return np.exp(k * np.log(mu) - mu - gammaln(k + 1.0))


def mixed_poisson(f: ServiceFit, lam: float, kmax: int) -> np.ndarray:
    """P(A = k), k = 0..kmax, for the arrivals ``A`` during one service ``S``."""
    s, w = service_nodes(f)
    return w @ _poisson(lam * s, kmax)


@dataclass
class _Chain:
    """The queue at batch completions (module docstring): its stationary law ``pi`` over
    0..K, and per state the batch that follows: ``(size, left behind)`` with probabilities."""

    bs: BatchService
    lam: float
    b: int
    tau: float
    pi: np.ndarray = field(init=False)
    starts: np.ndarray = field(init=False)  # (K+1, b+1): P(next batch has size n | X)
    fill: np.ndarray = field(init=False)  # (K+1,): mean fill wait after X (idle time apart)

    def __post_init__(self) -> None:
        b, lam = self.b, self.lam
        self.fits = [self.bs.fit(n) if n else self.bs.fit(1) for n in range(b + 1)]
        m = np.array([f.mean_s for f in self.fits])
        var = np.array([f.scv * f.mean_s**2 for f in self.fits])
        am = lam * m + lam * lam * var  # variance of the arrivals in a service
        amax = int(lam * m[b] + 12.0 * math.sqrt(am[b]) + 20)
        self.a = np.array([mixed_poisson(f, lam, amax) for f in self.fits])
        self.starts, self.fill = self._fills(b)
        rho = lam * m[b] / b
        eq = (rho + b * self.fits[b].scv + b) / (2.0 * (1.0 - rho))
        K = int(max(4 * b + amax, 25.0 * eq + 2 * b))
        while True:
            pi = self._solve(K)
            if pi[-4 * b :].sum() < TAIL_MASS or K > 200_000:
                break
            K *= 2
        self.pi = pi
        self.K = len(pi) - 1

    def _fills(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """For X = 0..b-1 waiting at a completion: the law of the next batch's size, and the
        mean fill wait (Poisson arrivals over the timeout; X = 0 counts from the first)."""
        lam, tau = self.lam, self.tau
        starts = np.zeros((b, self.b + 1))
        fill = np.zeros(b)
        pk = _poisson(np.array([lam * tau]), self.b)[0] if tau > 0 else np.eye(1, self.b + 1)[0]
        tail = 1.0 - np.cumsum(pk)  # P(Poisson(lam tau) > i)
        for x in range(b):
            have = max(x, 1)
            need = self.b - have
            starts[x, have : self.b] = pk[:need]
            starts[x, self.b] += max(0.0, 1.0 - pk[:need].sum())
            fill[x] = tail[:need].sum() / lam if tau > 0 else 0.0
        return starts, fill

    def _solve(self, K: int) -> np.ndarray:
        """Stationary law over X = 0..K, transitions beyond K cut off (each row renormalised;
        :meth:`__post_init__` grows K until that mass is negligible): pi_0 = 1, then the banded
        balance equations of states 1..K (M[x', x] = P[x, x'] - delta), then normalised."""
        b, a = self.b, self.a
        amax = a.shape[1] - 1
        lo, up = amax, b
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
            row = np.zeros(K + 1)
            st = self.starts[x]
            for n in np.nonzero(st)[0]:
                seg = a[n][: K + 1]
                row[: len(seg)] += st[n] * seg
            row /= row.sum()
            if x == 0:
                rhs -= row[1:]
                continue
            nz = np.nonzero(row[1:])[0] + 1
            ab[up + nz - x, x - 1] += row[nz]
        ab[up, :] -= 1.0
        sol = solve_banded((lo, up), ab, rhs)
        pi = np.concatenate([[1.0], np.maximum(sol, 0.0)])
        return pi / pi.sum()

    # ------------------------------------------------------------------ figures

    def batch_law(self) -> tuple[np.ndarray, np.ndarray]:
        """Per batch (over batches): P(size n) for n = 0..b, and P(size b, left behind Q)."""
        b, pi = self.b, self.pi
        size = np.zeros(b + 1)
        low = min(b, len(pi))
        size += pi[:low] @ self.starts[:low] if low <= len(self.starts) else 0.0
        size[b] += pi[b:].sum()
        full_q = np.zeros(len(pi))
        full_q[0] = pi[:low] @ self.starts[:low, b]
        full_q[: len(pi) - b] += pi[b:]
        return size, full_q

    def cycle_parts(self) -> tuple[float, float, float]:
        """Mean idle time, fill wait and service per batch."""
        b, pi = self.b, self.pi
        size, _ = self.batch_law()
        m = np.array([f.mean_s for f in self.fits])
        idle = pi[0] / self.lam
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
    bs: BatchService, lam: float, b: int, tau: float, arrival_scv: float = 1.0
) -> Sojourn:
    """The sojourn of a worker with service fits ``bs`` serving batches of at most ``b`` at
    arrival rate ``lam`` with fill timeout ``tau`` (module docstring; cached: 20-100 ms each).
    Arrivals are taken as Poisson: ``arrival_scv`` is not used. (In the DES a batching worker
    fed by another one gets its tasks in groups, a batch's outputs leaving together, and fills
    its batches sooner than this says: conservative, by up to about 8 points of attainment near
    saturation; ``experiments/results/batching.md``.)"""
    return _batch_sojourn(bs, float(lam), int(b), float(tau))


@lru_cache(maxsize=4096)
def _batch_sojourn(bs: BatchService, lam: float, b: int, tau: float) -> Sojourn:
    fb = bs.fit(b)
    if lam <= 0:
        lam = 1e-12
    if lam * fb.mean_s / b >= 1.0:
        return GridSojourn(lam, 1.0, False, float(b))
    chain = _Chain(bs, lam, b, tau)
    idle, fill, service = chain.cycle_parts()
    size, full_q = chain.batch_law()
    cycle = idle + fill + service
    nbar = float(size @ np.arange(b + 1))
    return _tagged(chain, size, full_q, cycle, service / cycle, nbar)


def _tagged(
    chain: _Chain, size: np.ndarray, full_q: np.ndarray, cycle: float, busy: float, nbar: float
) -> GridSojourn:
    """The tagged task's sojourn on a grid (module docstring)."""
    b, lam, tau, fits = chain.b, chain.lam, chain.tau, chain.fits
    kmax = int(np.searchsorted(np.cumsum(full_q[::-1])[::-1] < 1e-9, True) // b) + 2
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
    _while_free(chain, cycle, g)
    lat = [_lattice(f, h, n) for f in fits]
    out = _conv(g[b], lat[b], n)
    for x in range(1, b):
        if g[x].any():
            out += _conv(g[x], _fill_then_serve(chain, x, lat, h, n), n)
    acc = np.zeros(n)
    for k in range(kmax, 0, -1):  # Horner: sum_k over_k * S_b^(k) then * S_b
        acc = _conv(acc + over[k], lat[b], n) if (acc.any() or over[k].any()) else acc
    if acc.any():
        out += _conv(acc, lat[b], n)
    tail_e = max(fits[b].mean_s, h)
    return GridSojourn(lam, busy, True, nbar, h, out, tail_e)


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
    added to the R-masses ``g`` (per X class) and ``over`` (per overflow k)."""
    b, lam = chain.b, chain.lam
    kmax = over.shape[0] - 1
    n = g.shape[1]
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
            jmax = len(qlaw) + int(lam * s + 10 * math.sqrt(lam * s + 1) + 5)
            jpos = _poisson(lam * (s - r), jmax)  # (U, jmax + 1): law of j - 1
            if len(qlaw) > 1:
                jpos = _conv_rows(jpos, qlaw, jmax + 1)
            # X - 1 = (j - 1) + A2 for j <= b; X < b: fill classes, else class b
            xlaw = _conv_rows(jpos[:, :b], _poisson(lam * r, b), b)
            cell = np.minimum(np.rint(r / h).astype(int), n - 1)
            cls = np.empty((len(_U), b), dtype=int)
            cls[:, : b - 1] = np.arange(1, b)
            cls[:, b - 1] = b
            mass = np.empty((len(_U), b))
            mass[:, : b - 1] = xlaw[:, : b - 1]
            mass[:, b - 1] = jpos[:, :b].sum(1) - xlaw[:, : b - 1].sum(1)
            rows.append((cls * n + cell[:, None]).ravel())
            vals.append((w * mass).ravel())
            if jpos.shape[1] > b:
                ks = (np.arange(b, jpos.shape[1]) // b).clip(max=kmax)
                onehot = np.zeros((len(ks), kmax + 1))
                onehot[np.arange(len(ks)), ks] = 1.0
                per_k = jpos[:, b:] @ onehot
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


def _while_free(chain: _Chain, cycle: float, g: np.ndarray) -> None:
    """Arrivals while the worker is idle or filling a batch join the batch being formed
    (R = 0): idle -> it is the first (fill from 1); filling from X with i arrivals so far ->
    fill from X + i + 1 (the full timeout again: conservative)."""
    b, lam, tau, pi = chain.b, chain.lam, chain.tau, chain.pi
    g[1, 0] += pi[0] / lam / cycle
    if tau <= 0:
        return
    pk = _poisson(np.array([lam * tau]), b)[0]
    tail = 1.0 - np.cumsum(pk)  # P(Poisson(lam tau) > i)
    for x in range(min(b, len(pi))):
        have = max(x, 1)
        for i in range(b - have):
            c = have + i + 1
            g[min(c, b), 0] += pi[x] * tail[i] / lam / cycle


def _fill_then_serve(chain: _Chain, x: int, lat: list[np.ndarray], h: float, n: int) -> np.ndarray:
    """The law of (fill wait + service) of a batch formed from ``x`` waiting tasks: with the
    timeout, it fills within ``tau`` (Erlang time of the missing arrivals, size b) or starts
    at ``tau`` with ``x + Poisson(lambda tau)``; without, it starts at once with ``x``."""
    b, lam, tau = chain.b, chain.lam, chain.tau
    if tau <= 0:
        return lat[x]
    need = b - x
    pk = _poisson(np.array([lam * tau]), b)[0]
    out = np.zeros(n)
    # started at the timeout: x + i tasks, i < need
    late = np.zeros(n)
    for i in range(need):
        late += pk[i] * lat[x + i]
    shift = int(round(tau / h))
    if shift < n:
        out[shift:] += late[: n - shift]
    # filled before the timeout: Erlang(need, lam) on [0, tau], as cell masses of its CDF
    edges = np.clip((np.arange(n + 1) - 0.5) * h, 0.0, tau)
    dens = np.diff(1.0 - pdtr(need - 1, lam * edges))
    if dens.any():
        out += _conv(dens, lat[b], n)
    return out


# ---------------------------------------------------------------------- over arrival rates


@dataclass(frozen=True, eq=False)
class BatchTable:
    """A batching worker's steady state at a ladder of arrival rates (0 up to 0.995 of its
    capacity ``b / E[S_b]``, denser near it), for models that move through rates (the fluid
    simulator): per rate the mean number in system ``L = rate * E[T]`` (Little), the busy
    fraction, the mean sojourn and wait, and the :class:`Sojourn` itself."""

    capacity: float
    rates: np.ndarray
    number: np.ndarray
    busy: np.ndarray
    mean_s: np.ndarray
    wait_s: np.ndarray
    sojourns: tuple[Sojourn, ...]

    def at_number(self, x: float) -> tuple[int, float]:
        """Where a mean number in system ``x`` lies: ``(i, f)`` with ``x`` between entries
        ``i`` and ``i + 1`` at fraction ``f`` (``i`` is the last entry beyond the table)."""
        num = self.number
        i = int(np.searchsorted(num, x, side="right")) - 1
        if i >= len(num) - 1:
            return len(num) - 1, 0.0
        i = max(i, 0)
        span = num[i + 1] - num[i]
        return i, float((x - num[i]) / span) if span > 0 else 0.0


TABLE_POINTS = 20
"""Rates in a :class:`BatchTable` besides 0."""


@lru_cache(maxsize=256)
def batch_table(bs: BatchService, b: int, tau: float) -> BatchTable:
    """The :class:`BatchTable` of a worker with fits ``bs``, batch size ``b`` and fill timeout
    ``tau`` (cached: it costs :data:`TABLE_POINTS` sojourns, about a second)."""
    cap = bs.max_throughput(b)
    frac = 0.995 * (1.0 - (1.0 - np.arange(TABLE_POINTS + 1) / TABLE_POINTS) ** 2)
    frac[0] = 1e-6
    rates = cap * frac
    sojourns = tuple(batch_sojourn(bs, float(r), b, tau) for r in rates)
    mean = np.array([s.mean_s for s in sojourns])
    own = np.array([bs.fit(max(1, min(b, round(s.mean_batch)))).mean_s for s in sojourns])
    return BatchTable(
        capacity=cap,
        rates=rates,
        number=rates * mean,
        busy=np.array([s.utilization for s in sojourns]),
        mean_s=mean,
        wait_s=np.maximum(mean - own, 0.0),
        sojourns=sojourns,
    )
