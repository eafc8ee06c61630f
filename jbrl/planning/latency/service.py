"""Service times: fits to a profile's percentiles, per batch size, and their CDFs.

* :class:`ServiceFit` (:func:`fit_percentiles`, :func:`fit_service`): a lognormal through p50
  and p90 (``sigma = ln(p90 / p50) / z_0.9``); ``exponential`` and ``deterministic`` keep the
  lognormal's mean (exact queueing tests). The DES samples them; the fluid model and the
  sojourn-time model use their mean, squared coefficient of variation (SCV) and CDF.
* :class:`BatchService` (:func:`batch_service`): the fits of one (operator, variant, worker)
  per batch size ``n``. A profile's own p50/p90 are batch 1; its ``batches:`` rows give the
  whole-batch latency at other sizes; a size between two profiled ones takes p50 and p90
  interpolated linearly in ``n`` (batch latency is close to affine in the batch size: a fixed
  part plus a per-item part, as the profiles show), so a partial batch of a worker configured
  for ``b`` runs in between. Sizes above the largest profiled one have no fit.
* :func:`exp_plus_service_cdf`: P(Exp(E) + S <= t), the sojourn of a task that waits (after
  the fixed part of its wait); :attr:`ServiceFit.a3` gives that wait's spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from jbrl.scenario.model import Profile, Scenario

ServiceFamily = Literal["lognormal", "exponential", "deterministic"]
SERVICE_FAMILIES: tuple[str, ...] = ("lognormal", "exponential", "deterministic")
"""Service-time distributions a simulator can draw (:class:`ServiceFit`)."""

Z90 = 1.2815515655446004
"""Standard normal 90th percentile."""

# Quadrature over a lognormal's log: nodes z in [-7, 7] (beyond: < 3e-12 of the mass),
# trapezoid weights phi(z) dz normalised to 1. Used where a CDF is needed at scattered times.
_ZQ = np.linspace(-7.0, 7.0, 1401)
_WQ = np.exp(-0.5 * _ZQ * _ZQ)
_WQ /= _WQ.sum()


@dataclass(frozen=True)
class ServiceFit:
    """Service-time distribution of one (operator, variant, worker, batch size), in seconds."""

    family: str
    mean_s: float
    log_median: float  # lognormal: ln(p50 in s)
    sigma: float  # lognormal: log-standard deviation
    scv: float  # squared coefficient of variation

    @property
    def k(self) -> float:
        """(1 + SCV) / 2, the Pollaczek-Khinchine factor."""
        return 0.5 * (1.0 + self.scv)

    @property
    def a3(self) -> float:
        """``4 m E[S^3] / (3 E[S^2]^2)``, the service's normalised third moment as it enters the
        spread of an M/G/1 wait (:func:`~jbrl.planning.latency.queueing.wait_shape`): 4/3 for a
        fixed time, 2 for an exponential, ``4/3 exp(sigma^2)`` for a lognormal."""
        if self.family == "exponential":
            return 2.0
        if self.family == "lognormal":
            return 4.0 / 3.0 * math.exp(self.sigma * self.sigma)
        return 4.0 / 3.0

    @property
    def fixed(self) -> bool:
        """True when every service takes ``mean_s`` (deterministic, or a lognormal with
        p90 = p50)."""
        return self.family == "deterministic" or (self.family == "lognormal" and self.sigma == 0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` service times drawn from ``rng``."""
        if self.family == "lognormal":
            return np.exp(rng.normal(self.log_median, self.sigma, n))
        if self.family == "exponential":
            return rng.exponential(self.mean_s, n)
        return np.full(n, self.mean_s)


def fit_percentiles(p50_ms: float, p90_ms: float, family: str) -> ServiceFit:
    """The service-time distribution of ``family`` for percentiles p50 and p90 (ms): the
    lognormal through both, or another family with the lognormal's mean."""
    p50 = p50_ms / 1000.0
    sigma = max(0.0, math.log(p90_ms / p50_ms) / Z90)
    mean = p50 * math.exp(0.5 * sigma * sigma)
    if family == "lognormal":
        scv = math.expm1(sigma * sigma)
    elif family == "exponential":
        scv = 1.0
    else:
        scv = 0.0
    return ServiceFit(family, mean, math.log(p50), sigma, scv)


def fit_service(profile: Profile, family: str) -> ServiceFit:
    """The batch-1 service-time distribution of a profile (:func:`fit_percentiles`)."""
    return fit_percentiles(profile.p50_ms, profile.p90_ms, family)


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


def exp_plus_service_cdf(fit: ServiceFit, e: float, t: np.ndarray) -> np.ndarray:
    """P(X + S <= t) with X ~ Exp(mean ``e``) independent of the service time S, at each time
    of ``t`` (1-d): closed forms for fixed and exponential service; for a lognormal,
    ``E_S[1 - exp(-(t - S)^+ / e)]`` by quadrature over ``ln S`` (1401 nodes, error < 1e-6)."""
    t = np.asarray(t, dtype=float)
    if e <= 0:
        return service_cdf(fit, t)
    if fit.fixed:
        return -np.expm1(-np.maximum(t - fit.mean_s, 0.0) / e)
    if fit.family == "exponential":
        m = fit.mean_s
        tp = np.maximum(t, 0.0)
        if abs(e - m) <= 1e-9 * m:
            return 1.0 - np.exp(-tp / m) * (1.0 + tp / m)
        return 1.0 - (e * np.exp(-tp / e) - m * np.exp(-tp / m)) / (e - m)
    s = np.exp(fit.log_median + fit.sigma * _ZQ)
    out = np.empty(t.shape)
    step = max(1, 200_000 // len(s))  # rows per chunk: a few MB at a time
    for i in range(0, len(t), step):
        d = t[i : i + step, None] - s[None, :]
        np.maximum(d, 0.0, out=d)
        out[i : i + step] = -np.expm1(-d / e) @ _WQ
    return out


# ---------------------------------------------------------------------- batch sizes


@dataclass(frozen=True)
class BatchService:
    """Service-time fits of one (operator, variant, worker) per batch size (module docstring).

    ``points``: ``(batch, p50_ms, p90_ms)`` of batch 1 and every profiled size, ascending.
    """

    family: str
    points: tuple[tuple[int, float, float], ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """The profiled batch sizes (1 first): the sizes a plan may configure."""
        return tuple(p[0] for p in self.points)

    @property
    def max_batch(self) -> int:
        return self.points[-1][0]

    @cached_property
    def _fits(self) -> dict[int, ServiceFit]:
        return {}

    def percentiles_ms(self, n: int) -> tuple[float, float]:
        """(p50, p90) in ms of a batch of ``n`` (interpolated between profiled sizes)."""
        if not 1 <= n <= self.max_batch:
            raise ValueError(f"batch size {n} outside the profiled sizes {list(self.sizes)}")
        pts = self.points
        for (b0, p50a, p90a), (b1, p50b, p90b) in zip(pts, pts[1:], strict=False):
            if b0 <= n <= b1:
                w = (n - b0) / (b1 - b0)
                return p50a + w * (p50b - p50a), max(p90a + w * (p90b - p90a), 0.0)
        return pts[0][1], pts[0][2]  # (a single point: n is 1)

    def fit(self, n: int = 1) -> ServiceFit:
        """The service-time fit of a batch of ``n`` (1 <= n <= :attr:`max_batch`)."""
        f = self._fits.get(n)
        if f is None:
            p50, p90 = self.percentiles_ms(n)
            f = self._fits[n] = fit_percentiles(p50, max(p90, p50), self.family)
        return f

    def max_throughput(self, n: int = 1) -> float:
        """Requests/s a worker serves when every batch has ``n`` requests: ``n / E[S_n]``."""
        return n / self.fit(n).mean_s


def profile_points(profile: Profile) -> tuple[tuple[int, float, float], ...]:
    """``(batch, p50_ms, p90_ms)`` of batch 1 (the profile's own percentiles) and of every
    ``batches:`` row above 1, ascending."""
    rows = {1: (profile.p50_ms, profile.p90_ms)}
    for r in profile.batches:
        if r.batch > 1:
            rows[r.batch] = (r.p50_ms, r.p90_ms)
    return tuple((b, *rows[b]) for b in sorted(rows))


def batch_service(
    scenario: Scenario,
    operator: str,
    variant: str,
    worker: str,
    family: str = "lognormal",
) -> BatchService:
    """The :class:`BatchService` of (operator, variant) on ``worker`` from its profile (the
    worker's own profile wins over its type's). Raises ``KeyError`` when there is none."""
    prof = scenario.profile(operator, variant, worker)
    if prof is None:
        raise KeyError(f"no profile for {operator!r} variant {variant!r} on worker {worker!r}")
    return BatchService(family, profile_points(prof))
