"""The latency model (jbrl.planning.latency): service-time fits and CDFs, the fluid queue step
against queueing theory, distributions on a grid, and its place in the layers."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from jbrl.planning import latency
from jbrl.planning.latency import (
    ServiceFit,
    cdf_of_sum,
    fit_service,
    fluid_queue_step,
    norm_cdf,
    percentiles_with_tail,
    queue_length,
    service_cdf,
)
from jbrl.scenario.model import Profile


def profile(p50: float, p90: float) -> Profile:
    return Profile(operator="op", worker="w", p50_ms=p50, p90_ms=p90)


def test_fits_keep_the_lognormal_mean_and_match_its_percentiles():
    logn = fit_service(profile(100.0, 150.0), "lognormal")
    cdf = service_cdf(logn, np.array([0.0, 0.1, 0.15]))
    assert cdf[0] == 0.0
    assert cdf[1] == pytest.approx(0.5, abs=1e-6)
    assert cdf[2] == pytest.approx(0.9, abs=1e-6)
    assert logn.scv == pytest.approx(math.expm1(logn.sigma**2))
    for family, scv in (("exponential", 1.0), ("deterministic", 0.0)):
        fit = fit_service(profile(100.0, 150.0), family)
        assert fit.mean_s == logn.mean_s and fit.scv == scv and fit.k == 0.5 * (1 + scv)
    exp = fit_service(profile(100.0, 150.0), "exponential")
    t = np.array([0.05, 0.2])
    assert service_cdf(exp, t) == pytest.approx(1 - np.exp(-t / exp.mean_s))
    det = fit_service(profile(100.0, 100.0), "deterministic")
    assert service_cdf(det, np.array([0.09, 0.1, 0.11])).tolist() == [0.0, 1.0, 1.0]


def test_samples_follow_the_fit():
    fit = ServiceFit("exponential", 0.2, math.log(0.2), 0.0, 1.0)
    draws = fit.sample(np.random.default_rng(0), 100_000)
    assert draws.mean() == pytest.approx(0.2, rel=0.02)


def test_norm_cdf_is_within_its_error_bound():
    z = np.linspace(-5, 5, 101)
    exact = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z])
    assert np.max(np.abs(norm_cdf(z) - exact)) < 1.5e-7


@pytest.mark.parametrize("k", [0.5, 1.0, 1.7])
@pytest.mark.parametrize("r", [0.3, 0.8, 0.97])
def test_queue_step_keeps_equilibrium_with_the_kingman_wait(k, r):
    # at x0 = L(r) and a = r mu the queue stays; waits follow M/G/1: E = k m / (1 - r)
    m, dt = 0.1, 60.0
    mu, a = 1 / m, r / m
    ca2 = cs2 = k  # Kingman: k = (ca2 + cs2) / 2
    x0 = queue_length(r, k)
    x1, served, dropped, y, wait, e, cd2 = fluid_queue_step(x0, a, mu, ca2, cs2, m, dt, 1e9)
    assert x1 == pytest.approx(x0, rel=1e-9)
    assert served == pytest.approx(a * dt, rel=1e-9) and dropped == 0
    assert y == pytest.approx(r, rel=1e-9)
    assert wait == pytest.approx(k * m / (1 - r), rel=1e-9)
    assert e == pytest.approx(wait, rel=1e-6)
    assert cd2 == pytest.approx(cs2, rel=1e-9)  # equal SCVs stay


def test_queue_step_in_overload_grows_the_backlog_up_to_the_timeout():
    m, dt, timeout = 0.1, 10.0, 30.0
    x1, served, dropped, y, wait, e, _ = fluid_queue_step(0.0, 15.0, 10.0, 1.0, 0.0, m, dt, timeout)
    assert served == pytest.approx(10.0 * dt, rel=0.02)
    assert x1 == pytest.approx(5.0 * dt, rel=0.05) and dropped == 0
    assert y > latency.WAIT_UTILIZATION_CAP and wait > e  # a deterministic backlog
    x2, _, dropped, *_ = fluid_queue_step(x1, 15.0, 10.0, 1.0, 0.0, m, 600.0, timeout)
    assert x2 == 15.0 * timeout + 1.0  # the queue holds what waited at most the timeout
    assert dropped == pytest.approx(x1 + 600.0 * 5.0 - x2, rel=0.01)


def test_queue_step_of_an_unavailable_worker_serves_nothing():
    x1, served, dropped, y, wait, e, _ = fluid_queue_step(2.0, 1.0, 0.0, 1.0, 1.0, 0.1, 5.0, 30.0)
    assert served == 0 and dropped == 0 and x1 == 7.0
    assert wait == e <= 30.0


def test_short_timeouts_drop_the_waits_beyond_them():
    m, r, k = 0.1, 0.9, 1.0
    x0 = queue_length(r, k)
    args = (x0, r / m, 1 / m, 1.0, 1.0, m, 60.0)
    *_, dropped_long, _, _, e, _ = fluid_queue_step(*args, 1e9)
    x1, served, dropped, y, *_ = fluid_queue_step(*args, 1.0)
    assert dropped_long == 0
    assert dropped == pytest.approx(r / m * 60.0 * y * math.exp(-1.0 / e), rel=1e-9)
    assert served + dropped == pytest.approx(r / m * 60.0, rel=1e-9)


def test_cdf_of_sum_matches_a_brute_force_convolution():
    h, n = 0.01, 200
    t = np.arange(n) * h
    a = 1 - np.exp(-t / 0.2)
    b = 1 - np.exp(-t / 0.3)
    got = cdf_of_sum(a, b)
    # A's cell masses (at cell centres) against B's CDF half a cell later
    mass = np.diff(a, prepend=0.0)
    half = np.append(0.5 * (b[:-1] + b[1:]), b[-1])
    brute = np.array([sum(mass[i] * half[j - i] for i in range(j + 1)) for j in range(n)])
    assert got == pytest.approx(brute, abs=1e-12)
    # the sum of two exponentials (hypoexponential) at its mean, on a fine grid
    exact = 1 - (0.3 * np.exp(-t / 0.3) - 0.2 * np.exp(-t / 0.2)) / 0.1
    assert np.max(np.abs(got - exact)) < 0.02


def test_percentiles_with_tail_on_and_beyond_the_grid():
    t = np.arange(100) * 0.01
    cdf = np.clip(t / 0.5, 0, 1)  # uniform on [0, 0.5]
    out = percentiles_with_tail(t, cdf, 0.0, 0.25, 10.0)
    assert out["p50"] == pytest.approx(250.0) and out["p99"] == pytest.approx(495.0)
    # half the mass beyond the grid: an exponential tail with the given mean, capped
    half = np.clip(t / 0.5, 0, 0.5)
    out = percentiles_with_tail(t, half, 0.5, 2.0, 3.0)
    assert out["mean"] == pytest.approx(2000.0)
    assert 990.0 <= out["p95"] <= out["p99"] == 3000.0


def test_the_latency_model_imports_nothing_of_the_simulators():
    # layers point one way: scenario -> planning -> sim; the planner uses this model
    files = sorted(Path(latency.__file__).parent.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        tree = ast.parse(path.read_text())
        modules = [
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        ]
        assert not [m for m in modules if m and m.startswith("jbrl.sim")], path
