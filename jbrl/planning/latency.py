"""The latency model: service-time fits and the queueing formulas a worker's latency follows.

One home for the formulas that both simulators (and, later, the planner) use; none of them
depends on a simulator's state. Units are seconds; rates are per second.

* **Service times** (:class:`ServiceFit`, :func:`fit_service`) per (operator, variant, worker):
  a lognormal through the profile's p50 and p90 (``sigma = ln(p90 / p50) / z_0.9``);
  ``exponential`` and ``deterministic`` keep the lognormal's mean (exact queueing tests). The DES
  samples them; the fluid model uses their mean, squared coefficient of variation (SCV) and CDF
  (:func:`service_cdf`).
* **Queue length** of a G/G/1 queue at utilisation ``r`` (Pollaczek-Khinchine / Kingman):
  ``L(r) = r + k r^2 / (1 - r)`` with ``k = (ca2 + cs2) / 2`` (arrival and service SCVs),
  :func:`queue_length`.
* **A worker's queue over a step** (:func:`fluid_queue_step`): the pointwise stationary fluid
  flow approximation (PSFFA; Wang, Tipper et al. 1996), ``dx/dt = a - mu G(x)`` with
  ``G = L^-1``, one backward-Euler step (closed form: a quadratic in ``r``), a queue that holds
  at most ``max(a, mu) * timeout`` tasks. Waiting time at the step's mean state: no wait with
  probability ``1 - r``, else ``D + Exp(E)``, the M/G/1 exponential approximation
  (``E = k m / (1 - r)``) with the part of the mean wait beyond the utilisation cap
  :data:`WAIT_UTILIZATION_CAP` treated as a deterministic backlog ``D``; without backlog a share
  ``P(W > timeout) = r exp(-timeout / E)`` is dropped. Departures' variability (Whitt's QNA):
  ``r^2 cs2 + (1 - r^2) ca2``.
* **Latency distributions on a grid**: a stage adds (:func:`cdf_of_sum`, a discrete convolution),
  a join takes the max of its inputs (product of CDFs); percentiles beyond the grid follow an
  exponential tail (:func:`percentiles_with_tail`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from math import exp, sqrt
from typing import Literal

import numpy as np

from jbrl.scenario.model import Profile

ServiceFamily = Literal["lognormal", "exponential", "deterministic"]
SERVICE_FAMILIES: tuple[str, ...] = ("lognormal", "exponential", "deterministic")
"""Service-time distributions a simulator can draw (:class:`ServiceFit`)."""

Z90 = 1.2815515655446004
"""Standard normal 90th percentile."""

WAIT_UTILIZATION_CAP = 0.98
"""Utilisation above which extra mean wait counts as deterministic backlog (:func:`waiting_time`)."""

QUANTILES = (0.5, 0.95, 0.99)
"""The latency percentiles reported (p50, p95, p99)."""
_QUANTILES = np.array(QUANTILES)  # (np.interp would convert the tuple on every call)


# ---------------------------------------------------------------------- service times


@dataclass(frozen=True)
class ServiceFit:
    """Service-time distribution of one (operator, variant, worker), in seconds."""

    family: str
    mean_s: float
    log_median: float  # lognormal: ln(p50 in s)
    sigma: float  # lognormal: log-standard deviation
    scv: float  # squared coefficient of variation

    @property
    def k(self) -> float:
        """(1 + SCV) / 2, the Pollaczek-Khinchine factor."""
        return 0.5 * (1.0 + self.scv)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` service times drawn from ``rng``."""
        if self.family == "lognormal":
            return np.exp(rng.normal(self.log_median, self.sigma, n))
        if self.family == "exponential":
            return rng.exponential(self.mean_s, n)
        return np.full(n, self.mean_s)


def fit_service(profile: Profile, family: str) -> ServiceFit:
    """The service-time distribution of ``family`` for a profile's p50 and p90 (see the module
    docstring): the lognormal through both, or another family with the lognormal's mean."""
    p50 = profile.p50_ms / 1000.0
    sigma = max(0.0, math.log(profile.p90_ms / profile.p50_ms) / Z90)
    mean = p50 * math.exp(0.5 * sigma * sigma)
    if family == "lognormal":
        scv = math.expm1(sigma * sigma)
    elif family == "exponential":
        scv = 1.0
    else:
        scv = 0.0
    return ServiceFit(family, mean, math.log(p50), sigma, scv)


def norm_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, |error| < 1.5e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def service_cdf(fit: ServiceFit, t: np.ndarray) -> np.ndarray:
    """P(S <= t) for the fitted service distribution, at each time of ``t``."""
    out = np.zeros_like(t)
    pos = t > 0
    if fit.family == "lognormal" and fit.sigma > 0:
        out[pos] = norm_cdf((np.log(t[pos]) - fit.log_median) / fit.sigma)
    elif fit.family == "exponential":
        out[pos] = -np.expm1(-t[pos] / fit.mean_s)
    else:
        out = (t >= fit.mean_s).astype(float)
    return out


# ---------------------------------------------------------------------- queueing


def queue_length(r: float, k: float) -> float:
    """Mean number in a G/G/1 system at utilisation ``r < 1``: ``L(r) = r + k r^2 / (1 - r)``
    (Pollaczek-Khinchine; Kingman's ``k = (ca2 + cs2) / 2``)."""
    return r + k * r * r / (1.0 - r)


def fluid_queue_step(
    x0: float, a: float, mu: float, ca2: float, cs2: float, m: float, dt: float, timeout: float
) -> tuple[float, float, float, float, float, float, float]:
    """One step of length ``dt`` of a worker's queue in the fluid model (see the module docstring).

    ``x0``: mean number in system at the start; ``a``: arrival rate; ``mu``: service rate (0
    while the worker is unavailable: tasks wait for it, at most the timeout); ``ca2``, ``cs2``:
    arrival and service SCV; ``m``: mean service time. Returns ``(x1, served, dropped, y, wait,
    E, cd2)``: number in system at the end; tasks served; tasks dropped (beyond the queue's
    capacity ``max(a, mu) * timeout``, and in a queue without backlog the served ones that waited
    longer than the timeout); utilisation ``y`` at the step's mean state; mean wait of a task
    that waits, ``D + E``, and its exponential part ``E``; SCV of the departures.

    * Queue: backward Euler of the PSFFA, ``x1 = x0 + a dt - mu dt r`` with ``x1 = L(r)``
      (:func:`queue_length`), a quadratic in ``r``; exact at equilibrium (``x0 = L(a / mu)``
      stays), and the backlog grows by ``(a - mu) dt`` in overload.
    * Waiting time at the mean state ``xm``, ``y = L^-1(xm)``: a task waits with probability
      ``y``, then ``D + Exp(E)``; ``E = k m / (1 - min(y, cap))`` (the M/G/1 exponential
      approximation, cap :data:`WAIT_UTILIZATION_CAP`) and ``D + E = (xm - y) m / y^2``
      (Little's law on the queue), so that ``D > 0`` only beyond the cap; at most the timeout.
    * Without backlog, ``P(W > T) = y exp(-T / E)`` of the arrivals wait beyond the timeout ``T``.
    * Departures (QNA): ``cd2 = r^2 cs2 + (1 - r^2) ca2``.

    One function, not one per formula: the fluid step calls it for every worker and step, and a
    Python call costs as much as the arithmetic here.
    """
    k = 0.5 * (ca2 + cs2)
    # ---- the queue: b = x0 + a dt, x1 = b - mu dt r = L(r)
    b = x0 + a * dt
    cc = mu * dt
    km1 = k - 1.0
    aa = km1 - cc
    bb = 1.0 + cc + b
    r = 2.0 * b / (bb + sqrt(bb * bb + 4.0 * aa * b))
    served = cc * r
    x1 = b - served
    cap = (a if a > mu else mu) * timeout + 1.0
    drop = 0.0
    if x1 > cap:
        drop = x1 - cap
        x1 = cap
    # ---- waiting time at the step's mean state (y = L^-1(xm), exact at k = 1)
    xm = 0.5 * (x0 + x1)
    bm = 1.0 + xm
    y = 2.0 * xm / (bm + sqrt(bm * bm + 4.0 * km1 * xm)) if xm > 0 else 0.0
    km = k * m
    if y > 0.5:
        wc = (xm - y) * m / (y * y)
        e = km / (1.0 - (y if y < WAIT_UTILIZATION_CAP else WAIT_UTILIZATION_CAP))
    else:  # (the same expression twice when y <= 0.5 < cap)
        wc = e = km / (1.0 - y)
    if wc > timeout:  # older tasks are dropped
        wc = timeout
    if mu > 0:
        if e >= wc * 0.999999:  # (equal at equilibrium, up to rounding)
            e = wc
            # ---- no backlog: a dt y exp(-T / E) waited beyond the timeout (none below e^-30)
            if e > 0 and served > 0 and drop == 0.0:
                z = -timeout / e
                if z > -30.0:
                    tail = a * dt * y * exp(z)
                    if tail > served:  # (min(served, tail) without the call)
                        tail = served
                    served -= tail
                    drop += tail
    else:  # unavailable (loading or crashed): waits for it, at most the timeout
        e = wc
    # ---- departures
    rr = r * r
    return x1, served, drop, y, wc, e, rr * cs2 + (1.0 - rr) * ca2


# ---------------------------------------------------------------------- distributions on a grid


def cdf_of_sum(cdf_a: np.ndarray, cdf_b: np.ndarray) -> np.ndarray:
    """CDF of A + B on a grid from A's cell masses (cell centres) and B's CDF.

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


def percentiles_with_tail(
    grid: np.ndarray, cdf: np.ndarray, e_tail: float, mean_s: float, cap: float
) -> dict[str, float]:
    """p50/p95/p99 and mean (ms) of a latency whose CDF on ``grid`` (equally spaced from 0) is
    ``cdf``, and whose mass beyond the grid is ``start + Exp(tail)``.

    ``tail`` is ``e_tail`` (the slowest stage's exponential part, at least one grid step);
    ``start >= t_max`` is set so that the overall mean is ``mean_s`` (which counts deterministic
    backlog). Percentiles beyond the grid are at most ``cap`` (no request waits more than the
    timeout in any queue).
    """
    out = np.interp(_QUANTILES, cdf, grid).tolist()
    last = float(cdf[-1])
    t_max = float(grid[-1])
    h = float(grid[1])
    grid_part = h * float((1.0 - cdf[:-1]).sum()) - t_max * (1.0 - last)
    beyond = 1.0 - last
    tail = max(e_tail, h)
    start = t_max
    if beyond > 1e-9:
        start = max(t_max, (mean_s - grid_part) / beyond - tail)
    mean = grid_part + beyond * (start + tail)
    for i, q in enumerate(QUANTILES):
        if last < q:
            out[i] = min(start + tail * math.log(beyond / (1.0 - q)), cap)
    return {
        "p50": out[0] * 1000.0,
        "p95": out[1] * 1000.0,
        "p99": out[2] * 1000.0,
        "mean": mean * 1000.0,
    }
