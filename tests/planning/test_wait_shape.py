"""The spread of a batch-1 worker's wait (:func:`jbrl.planning.latency.queueing.wait_shape`):
Takacs' second moment at its limits, the sojourn model against Erlang's exact M/D/1 waiting
time, and the fluid step taking the same shape."""

from __future__ import annotations

import math

import pytest

from jbrl.planning.latency import (
    MixtureSojourn,
    fit_percentiles,
    fluid_queue_step,
    queue_length,
    worker_sojourn,
)
from jbrl.planning.latency.queueing import wait_shape


def md1_wait_cdf(x: float, lam: float, d: float = 1.0) -> float:
    """P(W <= x) in M/D/1 (Erlang 1909; Crommelin 1932):
    ``(1 - r) sum_{k <= x/d} [lam (k d - x)]^k / k! exp(-lam (k d - x))``. The sum alternates;
    kept to ``lam x <= 14`` here, where float64 holds it to ~1e-8 (checked against 50-digit
    arithmetic)."""
    assert lam * x <= 14.0
    s = 0.0
    for k in range(int(math.floor(x / d)) + 1):
        u = lam * (k * d - x)
        s += u**k / math.gamma(k + 1) * math.exp(-u)
    return (1.0 - lam * d) * s


def md1_wait_quantile(q: float, lam: float) -> float:
    lo, hi = 0.0, 14.0 / lam
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if md1_wait_cdf(mid, lam) >= q else (mid, hi)
    return hi


def test_the_shape_is_exponential_for_exponential_service_and_in_heavy_traffic() -> None:
    expo = fit_percentiles(100.0, 300.0, "exponential")
    fixed = fit_percentiles(100.0, 100.0, "deterministic")
    assert expo.a3 == 2.0 and fixed.a3 == pytest.approx(4.0 / 3.0)
    for r in (0.0, 0.3, 0.9):
        assert wait_shape(r, expo.a3) == 1.0
    # a fixed service at light load: the residual of one service, uniform (SCV 1/3)
    assert wait_shape(0.0, fixed.a3) == pytest.approx(math.sqrt(1.0 / 3.0))
    assert wait_shape(1.0, fixed.a3) == pytest.approx(1.0)
    shapes = [wait_shape(r / 10, fixed.a3) for r in range(11)]
    assert all(a < b for a, b in zip(shapes, shapes[1:], strict=False))
    # a lognormal above sigma = sqrt(ln 1.5) is more variable than exponential: stays Exp(E)
    wide = fit_percentiles(100.0, 400.0, "lognormal")
    assert wide.sigma > math.sqrt(math.log(1.5)) and wait_shape(0.2, wide.a3) == 1.0
    narrow = fit_percentiles(100.0, 120.0, "lognormal")
    assert narrow.a3 == pytest.approx(4.0 / 3.0 * (1.0 + narrow.scv))
    assert 0.0 < wait_shape(0.2, narrow.a3) < 1.0


@pytest.mark.parametrize("r", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("q", [0.99, 0.999])
def test_the_md1_tail_matches_erlangs_exact_wait(r: float, q: float) -> None:
    # the batch-1 sojourn of a fixed 1 s service is W + 1: its tail beyond the exact p99 / p99.9
    # of W is within 50 % of 1 - q (within 11 % at p99); Exp(E) alone overstated it up to 5x
    x = md1_wait_quantile(q, r)
    fixed = fit_percentiles(1000.0, 1000.0, "deterministic")
    got = worker_sojourn(fixed, r, 1).survival(x + 1.0)
    exponential = r * math.exp(-x * (1.0 - r) / 0.5)  # E = k m / (1 - r), k = 1/2
    assert got == pytest.approx(1.0 - q, rel=0.12 if q == 0.99 else 0.5)
    assert abs(got - (1.0 - q)) < abs(exponential - (1.0 - q))


def test_the_fluid_step_takes_the_same_shape_at_equilibrium() -> None:
    m, r, dt = 0.1, 0.4, 60.0
    fixed = fit_percentiles(100.0, 100.0, "deterministic")
    x0 = queue_length(r, 0.5)
    _x1, _s, _d, y, wait, e, _ = fluid_queue_step(x0, r / m, 1 / m, 1.0, 0.0, m, dt, 1e9, fixed.a3)
    c = wait_shape(r, fixed.a3)
    assert y == pytest.approx(r) and wait == pytest.approx(0.5 * m / (1 - r))
    assert e == pytest.approx(c * wait)  # the exponential part; the rest is a fixed delay
    soj = worker_sojourn(fixed, r / m, 1)
    assert isinstance(soj, MixtureSojourn)
    assert soj.components[1][1:3] == pytest.approx(((1 - c) * wait, c * wait))
    # a short timeout drops P(W > T) = y exp(-(T - (1 - c) E) / (c E)) of the arrivals
    t = 0.3
    _x1, served, dropped, *_ = fluid_queue_step(x0, r / m, 1 / m, 1.0, 0.0, m, dt, t, fixed.a3)
    want = r / m * dt * r * math.exp(-(t - (1 - c) * wait) / (c * wait))
    assert dropped == pytest.approx(want, rel=1e-6)
