"""Arrivals in groups (compound Poisson) at a batching worker: the counts, fill waits and the
tagged task's place in its group that :mod:`~jbrl.planning.latency.batching` needs.

A worker downstream of a batching worker receives that worker's outputs in groups: a batch's
tasks finish together and, routed one by one with the same transfer time, reach a receiver
together (a receiver given a fraction ``p`` of the sender's tasks gets ``Binomial(n, p)`` of a
batch of ``n``). :class:`Arrivals` describes such a stream: groups arrive as a Poisson process at
rate ``lam / E[G]``, their sizes ``G`` independent with law ``g`` (``g[k] = P(G = k)``,
``g[0] = 0``); ``g = (0, 1)`` is the plain Poisson stream of single tasks, for which every
method here reduces to the Poisson formulas exactly.

What is approximated: the group epochs are taken as Poisson (a busy sender's batches leave
about one service time apart, more regularly), and group sizes as independent of each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

POISSON: tuple[float, ...] = (0.0, 1.0)
"""The group-size law of single arrivals."""


def poisson_rows(mu: np.ndarray, kmax: int) -> np.ndarray:
    """Poisson pmfs, one row per mean in ``mu``, over 0..kmax."""
    k = np.arange(kmax + 1)
    mu = np.maximum(np.asarray(mu, dtype=float), 1e-300)[:, None]
    from scipy.special import gammaln  # (lazy: scipy costs 0.3 s to import; batch 1 never needs it)

    return np.exp(k * np.log(mu) - mu - gammaln(k + 1.0))


@dataclass(frozen=True, eq=False)
class Arrivals:
    """Tasks at rate ``lam`` (per second) in Poisson groups of law ``g`` (module docstring)."""

    lam: float
    g: np.ndarray = field(default_factory=lambda: np.array(POISSON))

    @property
    def single(self) -> bool:
        """Every group is one task (plain Poisson arrivals)."""
        return len(self.g) <= 2

    @property
    def mean_g(self) -> float:
        return float(self.g @ np.arange(len(self.g)))

    @property
    def lam_g(self) -> float:
        """Groups per second."""
        return self.lam / self.mean_g

    def count_variance(self, mean_t: float, var_t: float) -> float:
        """Variance of the tasks arriving in a random time of mean ``mean_t`` and variance
        ``var_t``."""
        k = np.arange(len(self.g))
        m1, m2 = float(self.g @ k), float(self.g @ (k * k))
        lg = self.lam_g
        return lg * mean_t * m2 + lg * lg * var_t * m1 * m1

    def counts(self, t: np.ndarray, kmax: int) -> np.ndarray:
        """P(k tasks arrive in a time ``t``), k = 0..kmax, one row per time of ``t``."""
        mu = self.lam_g * np.asarray(t, dtype=float)
        if self.single:
            return poisson_rows(mu, kmax)
        k = np.arange(len(self.g))
        top = float(np.max(mu))
        mean, var = top * float(self.g @ k), top * float(self.g @ (k * k))
        need = int(mean + 12.0 * math.sqrt(var + 1.0) + len(self.g))
        size = 1 << (max(kmax + 1, need) * 2).bit_length()
        gh = np.fft.rfft(self.g, size)
        pmf = np.fft.irfft(np.exp(mu[:, None] * (gh[None, :] - 1.0)), size)[:, : kmax + 1]
        return np.maximum(pmf, 0.0)

    def own_group(self) -> np.ndarray:
        """``w[u, v]``: P(a task has ``u`` tasks ahead of it and ``v`` behind it in its group)
        (its group is size-biased, its place in it uniform)."""
        kmax = len(self.g) - 1
        out = np.zeros((kmax, kmax))
        for k in range(1, kmax + 1):
            for u in range(k):
                out[u, k - 1 - u] = self.g[k] / self.mean_g
        return out

    def fill_paths(self, need: int, tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The groups that come while a batch missing ``need`` tasks fills (at most ``tau``):
        ``u[j, k]`` = P(the first ``j`` groups hold ``k < need`` tasks), ``p_eq[j]`` = P(exactly
        ``j`` groups come within ``tau``) and ``p_gt[j]`` = P(more than ``j``), j = 0..need."""
        u = np.zeros((need + 1, need))
        u[0, 0] = 1.0
        gk = np.zeros(need)
        top = min(need, len(self.g))
        gk[:top] = self.g[:top]
        for j in range(need):
            u[j + 1] = np.convolve(u[j], gk)[:need]
        from scipy.special import pdtr

        p_le = pdtr(np.arange(need + 1), self.lam_g * tau)
        p_eq = np.diff(np.concatenate([[0.0], p_le]))
        return u, p_eq, 1.0 - p_le

    def fill(self, have: int, b: int, tau: float) -> tuple[np.ndarray, float]:
        """A batch forming from ``have`` waiting tasks (``1 <= have < b``) with fill timeout
        ``tau``: ``start[n, L]`` = P(it starts with ``n`` tasks, ``L`` left waiting behind it)
        (a group that completes it may bring more than it takes), and the mean fill wait."""
        lmax = max(len(self.g) - 2, 0)
        start = np.zeros((b + 1, lmax + 1))
        if tau <= 0:
            start[have, 0] = 1.0
            return start, 0.0
        need = b - have
        u, p_eq, p_gt = self.fill_paths(need, tau)
        gl = np.zeros(need + lmax + 1)
        top = min(len(gl), len(self.g))
        gl[:top] = self.g[:top]
        for j in range(need):
            start[have:b, 0] += p_eq[j] * u[j]
            over = np.convolve(u[j], gl)[need : need + lmax + 1]  # sum m >= need
            start[b, : len(over)] += p_gt[j] * over
        mean = float(u.sum(axis=1)[:need] @ p_gt[:need]) / self.lam_g
        return start, mean

    def after_idle(self, b: int, tau: float) -> tuple[np.ndarray, float]:
        """As :meth:`fill` for an empty queue: the first group arrives (the timeout counts
        from it), then the batch fills from its size (at once when it holds ``b`` or more)."""
        lmax = max(len(self.g) - 2, 0)
        start = np.zeros((b + 1, lmax + 1))
        mean = 0.0
        for k in range(1, len(self.g)):
            if self.g[k] <= 0:
                continue
            if k >= b:
                start[b, k - b] += self.g[k]
                continue
            st, m = self.fill(k, b, tau)
            start += self.g[k] * st
            mean += self.g[k] * m
        return start, mean

    def fill_time(
        self, have: int, b: int, tau: float, h: float, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """For a batch forming from ``have`` tasks: the cell masses on a grid of step ``h``
        (``n`` cells) of the time it fills before the timeout (then it takes ``b``), and
        P(it starts at the timeout with ``have + k``), k = 0..b-have-1."""
        need = b - have
        u, p_eq, _ = self.fill_paths(need, tau)
        from scipy.special import pdtr

        edges = np.clip((np.arange(n + 1) - 0.5) * h, 0.0, tau)
        dens = np.zeros(n)
        lg = self.lam_g
        tail = np.zeros(need + 1)  # P(G >= i), i = 0..need
        top = min(len(self.g), need + 1)
        tail[:top] = np.cumsum(self.g[::-1])[::-1][:top]
        for j in range(need):
            # completed by group j + 1 (an Erlang(j + 1) time): needs G >= need - k
            c = float(u[j] @ tail[need - np.arange(need)])
            if c > 0:
                dens += c * np.diff(1.0 - pdtr(j, lg * edges))
        late = (p_eq[:need, None] * u[:need]).sum(axis=0)
        return dens, late
