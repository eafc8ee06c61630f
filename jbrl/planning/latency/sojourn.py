"""A worker's steady-state sojourn time (queue wait + batch formation + service) and its
SLO-safe rate.

:class:`Sojourn` is the interface (mean, CDF, survival, quantile, utilisation). Batch 1 is a
:class:`MixtureSojourn`, a mixture of components ``shift + Exp(e) + S`` (``S`` from a
service-time fit; ``e = 0``: no exponential part):

* **batch 1** (M/G/1 with Kingman's correction for the arrival SCV ``ca2``): a task finds the
  worker busy with probability ``r = lambda m`` and then waits ``E`` on average,
  ``E = k m / (1 - r)``, ``k = (ca2 + cs2) / 2`` (the mean wait ``r E`` is
  Pollaczek-Khinchine's), spread as Takacs' second moment gives
  (:func:`~jbrl.planning.latency.queueing.wait_shape`, ``c <= 1``): ``(1 - c) E + Exp(c E)``
  (``c = 1``, the exponential approximation, is exact for M/M/1; a near-fixed service time at
  light load waits less variably). Components: ``(1 - r, S)`` and
  ``(r, (1 - c) E + Exp(c E) + S)``. This is the wait the fluid model's queue step gives at equilibrium
  (:func:`~jbrl.planning.latency.queueing.fluid_queue_step`).
* **batch b > 1**: not modelled yet.

:func:`slo_safe_rate` is the largest rate at which P(sojourn > budget) <= tail holds for that
rate and every lower one (a planner may load the worker anywhere below it).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from jbrl.planning.latency.grid import cdf_of_sum
from jbrl.planning.latency.queueing import wait_law
from jbrl.planning.latency.service import (
    BatchService,
    ServiceFit,
    exp_plus_service_cdf,
    service_cdf,
)

Component = tuple[float, float, float, ServiceFit]
"""(weight, shift s, exponential mean e, service fit): ``shift + Exp(e) + S``."""


class Sojourn(ABC):
    """Steady-state sojourn time of one worker at one arrival rate.

    ``rate``: arrivals per second; ``utilization``: fraction of time the worker is busy;
    ``stable``: the queue has a steady state; ``mean_batch``: mean number of requests per batch.
    Unstable: the CDF is 0 everywhere, the mean and every quantile infinite.
    """

    rate: float
    utilization: float
    stable: bool
    mean_batch: float

    @property
    @abstractmethod
    def mean_s(self) -> float:
        """Mean sojourn time (s); inf when unstable."""

    @abstractmethod
    def cdf(self, t: np.ndarray) -> np.ndarray:
        """P(sojourn <= t) at each time of ``t``."""

    def cdf_on_grid(self, t: np.ndarray) -> np.ndarray:
        """The CDF on an equally spaced grid ``t`` from 0 (exactly :meth:`cdf` unless a
        subclass has a faster form for grids)."""
        return self.cdf(t)

    @abstractmethod
    def upper_s(self) -> float:
        """A time beyond which at most about 1e-4 of the sojourn's mass lies (cheap; for
        sizing grids)."""

    def survival(self, t: float) -> float:
        """P(sojourn > t)."""
        return float(1.0 - self.cdf(np.array([t]))[0])

    def quantile(self, q: float) -> float:
        """The ``q``-quantile (s): the least t with P(sojourn <= t) >= q; inf when unstable."""
        if not self.stable:
            return math.inf
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile level must be in (0, 1), got {q}")
        hi = max(self.mean_s, 1e-9)
        while self.cdf(np.array([hi]))[0] < q:
            hi *= 2.0
            if hi > 1e12:
                return math.inf
        lo = 0.0
        for _ in range(4):  # 4 rounds of 32 points: the bracket shrinks 31^4 ~ 1e6 times
            ts = np.linspace(lo, hi, 32)
            c = self.cdf(ts)
            i = int(np.searchsorted(c, q))  # first point with cdf >= q
            lo, hi = ts[max(i - 1, 0)], ts[min(i, 31)]
        return float(hi)


@dataclass(frozen=True)
class MixtureSojourn(Sojourn):
    """A sojourn time that is a mixture of ``shift + Exp(e) + S`` components (module
    docstring): batch 1."""

    rate: float
    utilization: float
    stable: bool
    components: tuple[Component, ...]
    mean_batch: float = 1.0

    @property
    def mean_s(self) -> float:
        if not self.stable:
            return math.inf
        return sum(w * (s + e + f.mean_s) for w, s, e, f in self.components)

    @property
    def mean_wait_s(self) -> float:
        """Mean time before service starts."""
        if not self.stable:
            return math.inf
        return sum(w * (s + e) for w, s, e, _f in self.components)

    def upper_s(self) -> float:
        far = 0.0
        for _w, s, e, f in self.components:
            if f.family == "exponential":
                svc = f.mean_s * 9.2
            else:
                svc = math.exp(f.log_median + 3.72 * f.sigma)
            far = max(far, s + e * 9.2 + svc)
        return far

    def cdf(self, t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=float))
        out = np.zeros(t.shape)
        if not self.stable:
            return out
        for w, s, e, f in self.components:
            if w > 0:
                out += w * exp_plus_service_cdf(f, e, t - s)
        return np.clip(out, 0.0, 1.0)

    def cdf_on_grid(self, t: np.ndarray) -> np.ndarray:
        """Each component's exponential part convolved with its service CDF on the grid
        (:func:`~jbrl.planning.latency.grid.cdf_of_sum`), then shifted: cheaper than
        :meth:`cdf`'s quadrature at every point."""
        out = np.zeros(len(t))
        if not self.stable:
            return out
        for w, s, e, f in self.components:
            if w <= 0:
                continue
            if e > 0:
                g = cdf_of_sum(-np.expm1(-t / e), service_cdf(f, t))
                if s > 0:
                    g = np.interp(t - s, t, g, left=0.0)
            else:
                g = service_cdf(f, t - s)
            out += w * g
        return np.clip(out, 0.0, 1.0)


def as_batch_service(service: BatchService | ServiceFit) -> BatchService | None:
    """``service`` as a :class:`BatchService`; None for a bare batch-1 fit."""
    return service if isinstance(service, BatchService) else None


def _fit1(service: BatchService | ServiceFit) -> ServiceFit:
    return service.fit(1) if isinstance(service, BatchService) else service


def worker_sojourn(
    service: BatchService | ServiceFit,
    rate: float,
    batch: int = 1,
    batch_timeout_s: float = 0.0,
    arrival_scv: float = 1.0,
    groups: tuple[float, ...] | None = None,
) -> Sojourn:
    """The steady-state :class:`Sojourn` of a worker with service times ``service`` (a
    :class:`BatchService`, or a batch-1 :class:`ServiceFit`) at arrival rate ``rate`` (req/s),
    serving batches of at most ``batch`` that wait at most ``batch_timeout_s`` to fill, with
    arrivals of squared coefficient of variation ``arrival_scv`` (1: Poisson). ``groups``
    (batch sizes above 1): the law of the sizes of the groups the tasks arrive in, for a worker
    fed by batching workers (:func:`~jbrl.planning.latency.feeders.feeder_groups`; None: one
    by one)."""
    if rate < 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be a finite, non-negative number, got {rate}")
    if batch < 1:
        raise ValueError(f"batch size must be at least 1, got {batch}")
    if batch > 1:
        from jbrl.planning.latency.batching import batch_sojourn

        bs = as_batch_service(service)
        if bs is None:
            raise ValueError("a batch size above 1 needs a BatchService (fits per batch size)")
        return batch_sojourn(bs, rate, batch, batch_timeout_s, arrival_scv, groups)
    return _single_sojourn(_fit1(service), rate, arrival_scv)


def _single_sojourn(fit: ServiceFit, rate: float, ca2: float) -> Sojourn:
    """Batch 1: M/G/1 with Kingman's factor, the wait laid out by
    :func:`~jbrl.planning.latency.queueing.wait_law` (module
    docstring)."""
    m = fit.mean_s
    r = rate * m
    if r >= 1.0:
        return MixtureSojourn(rate, 1.0, False, ((1.0, 0.0, 0.0, fit),))
    p, shift, e = wait_law(r, ca2, fit.scv, fit.a3, m)
    return MixtureSojourn(rate, r, True, ((1.0 - p, 0.0, 0.0, fit), (p, shift, e, fit)))


def slo_safe_rate(
    service: BatchService | ServiceFit,
    budget_s: float,
    tail: float,
    batch: int = 1,
    batch_timeout_s: float = 0.0,
    arrival_scv: float = 1.0,
) -> float:
    """The largest rate (req/s) with P(sojourn > ``budget_s``) <= ``tail`` at that rate and
    every lower one; 0 when even an idle worker misses it.

    Scans 32 rates up to the worker's capacity at ``batch`` (``b / E[S_b]``) for the first that
    misses, then bisects between it and the one below to a relative 1e-6 (batch sizes above 1:
    8 rates, 1e-3; their sojourns are cached, so budgets of one worker share the scan).
    """
    if not 0.0 < tail < 1.0:
        raise ValueError(f"tail must be in (0, 1), got {tail}")
    bs = as_batch_service(service)
    cap = bs.max_throughput(batch) if bs is not None else 1.0 / _fit1(service).mean_s

    def misses(lam: float) -> bool:
        s = worker_sojourn(service, lam, batch, batch_timeout_s, arrival_scv)
        return not s.stable or s.survival(budget_s) > tail

    if misses(cap * 1e-9):
        return 0.0
    lo = cap * 1e-9
    hi = cap
    scan, rel = (32, 1e-6) if batch == 1 else (8, 1e-3)  # (a batched sojourn costs ~20 ms)
    for i in range(1, scan + 1):  # (at i = scan the worker is saturated: it misses)
        lam = cap * i / scan
        if misses(lam):
            hi = lam
            break
        lo = lam
    while hi - lo > rel * hi:
        mid = 0.5 * (lo + hi)
        if misses(mid):
            hi = mid
        else:
            lo = mid
    return lo
