"""The latency model's API for planners: per-batch service fits, a worker's sojourn time, its
SLO-safe rate, and a plan's predicted latency — against closed forms and against the DES on
small cases (a single worker, a chain, a join) at several loads."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jbrl.planning.latency import (
    BatchService,
    batch_service,
    exp_plus_service_cdf,
    fit_percentiles,
    predict_plan,
    service_cdf,
    slo_safe_rate,
    worker_sojourn,
)
from jbrl.planning.plan import plan_from_dict
from jbrl.scenario import scenario_from_dict
from jbrl.sim import DesSimulator, SimConfig
from tests.conftest import des_latencies as shared_des_latencies
from tests.conftest import single_worker_scenario

# --------------------------------------------------------------------------- service fits


def test_batch_service_interpolates_between_profiled_sizes(tiny_dict):
    tiny_dict["profiles"][0]["batches"] = [
        {"batch": 4, "p50_ms": 200, "p90_ms": 250},
        {"batch": 8, "p50_ms": 360, "p90_ms": 480},
    ]
    sc = scenario_from_dict(tiny_dict, "<tiny>")
    bs = batch_service(sc, "detect", "small", "e1")
    assert bs.sizes == (1, 4, 8) and bs.max_batch == 8
    assert bs.percentiles_ms(1) == (80.0, 100.0)  # the profile's own p50/p90
    assert bs.percentiles_ms(4) == (200.0, 250.0)
    assert bs.percentiles_ms(2) == pytest.approx((120.0, 150.0))  # a third of the way to 4
    assert bs.percentiles_ms(6) == pytest.approx((280.0, 365.0))
    f = bs.fit(6)
    cdf = service_cdf(f, np.array([0.28, 0.365]))
    assert cdf == pytest.approx([0.5, 0.9], abs=1e-6)
    assert bs.max_throughput(8) == pytest.approx(8 / bs.fit(8).mean_s)
    for bad in (0, 9):
        with pytest.raises(ValueError, match="outside the profiled sizes"):
            bs.fit(bad)
    with pytest.raises(KeyError):
        batch_service(sc, "track", "default", "c1")  # no profile of track on the GPU


def test_exp_plus_service_cdf_matches_closed_forms_and_a_monte_carlo():
    t = np.linspace(0.0, 2.0, 41)
    e = 0.3
    det = fit_percentiles(100, 100, "deterministic")
    assert exp_plus_service_cdf(det, e, t) == pytest.approx(
        np.where(t >= 0.1, 1 - np.exp(-(t - 0.1) / e), 0.0)
    )
    logn = fit_percentiles(100, 180, "lognormal")
    rng = np.random.default_rng(0)
    draws = rng.exponential(e, 400_000) + logn.sample(rng, 400_000)
    empirical = np.searchsorted(np.sort(draws), t) / len(draws)
    assert np.max(np.abs(exp_plus_service_cdf(logn, e, t) - empirical)) < 3e-3


# --------------------------------------------------------------------------- one worker


@pytest.mark.parametrize("rho", [0.2, 0.6, 0.9])
def test_mm1_sojourn_is_exact(rho):
    # M/M/1: sojourn ~ Exp(mu - lambda)
    fit = fit_percentiles(100, 100, "exponential")
    mu = 1 / fit.mean_s
    s = worker_sojourn(fit, rho * mu)
    assert s.stable and s.utilization == pytest.approx(rho)
    assert s.mean_s == pytest.approx(1 / (mu - rho * mu))
    for q in (0.5, 0.9, 0.99):
        assert s.quantile(q) == pytest.approx(-math.log(1 - q) / (mu * (1 - rho)), rel=1e-5)
    assert s.survival(0.5) == pytest.approx(math.exp(-(mu - rho * mu) * 0.5), abs=1e-9)


def test_a_saturated_worker_has_no_steady_state():
    fit = fit_percentiles(100, 100, "exponential")
    s = worker_sojourn(fit, 10.0)
    assert not s.stable and s.mean_s == math.inf and s.quantile(0.5) == math.inf
    assert s.survival(100.0) == 1.0
    with pytest.raises(ValueError):
        worker_sojourn(fit, -1.0)


def test_slo_safe_rate_of_mm1_is_the_closed_form():
    # P(T > t) = exp(-(mu - lambda) t) <= tail  <=>  lambda <= mu - ln(1 / tail) / t
    fit = fit_percentiles(100, 100, "exponential")
    mu = 1 / fit.mean_s
    for budget, tail in ((1.0, 0.01), (0.5, 0.05), (2.0, 0.001)):
        want = mu - math.log(1 / tail) / budget
        assert slo_safe_rate(fit, budget, tail) == pytest.approx(want, rel=1e-5)
    assert slo_safe_rate(fit, 0.2, 0.01) == 0.0  # even an idle worker misses it
    bs = BatchService("exponential", ((1, 100.0, 100.0),))  # the same fit, per batch size
    assert slo_safe_rate(bs, 1.0, 0.01) == slo_safe_rate(fit, 1.0, 0.01)


def test_slo_safe_rate_meets_its_tail_and_one_percent_more_does_not():
    fit = fit_percentiles(80, 140, "lognormal")
    lam = slo_safe_rate(fit, 0.6, 0.01)
    assert 0 < lam < 1 / fit.mean_s
    assert worker_sojourn(fit, lam).survival(0.6) <= 0.01 + 1e-9
    assert worker_sojourn(fit, lam * 1.01).survival(0.6) > 0.01


# --------------------------------------------------------------------------- against the DES


def des_latencies(scenario, plan, rates, family, seconds, seed=1):
    """Latencies (s) and P(latency <= bound) of the DES over ``seconds`` after a warm-up."""
    arr = shared_des_latencies(
        scenario, plan, rates, seconds=seconds, warmup=seconds / 10, seed=seed, family=family
    )
    return arr, float(np.mean(arr <= scenario.slo.latency_ms / 1000.0))


SINGLE_PLAN = plan_from_dict({"worker_assignment": {"op": [{"worker": "w"}]}})


@pytest.mark.parametrize(
    ("family", "rho", "tol"),
    [("exponential", 0.3, 0.01), ("exponential", 0.7, 0.02), ("lognormal", 0.5, 0.02),
     ("lognormal", 0.8, 0.03)],
)  # fmt: skip
def test_single_worker_prediction_matches_the_des(family, rho, tol):
    fit = fit_percentiles(100, 150, family)
    lam = rho / fit.mean_s
    sc = single_worker_scenario(p50_ms=100.0, p90_ms=150.0, rate=lam, slo_ms=350.0)
    pred = predict_plan(sc, SINGLE_PLAN, family=family)
    lat, att = des_latencies(sc, SINGLE_PLAN, {"src": lam}, family, 25_000 / lam)
    assert pred.stable and pred.workers["w"].sojourn.utilization == pytest.approx(rho)
    assert pred.attainment == pytest.approx(att, abs=tol)
    assert pred.mean_s == pytest.approx(lat.mean(), rel=0.08)
    assert pred.paths[0].path == ("src", "op") and pred.paths[0].attainment == pred.attainment


def chain_plan():
    # cam -> detect (GPU c1, 8/10 ms) -> track (cloud CPU c2, 20/25 ms), plus the 100 KB upload
    return plan_from_dict(
        {
            "model_assignment": {"detect": "small"},
            "worker_assignment": {"detect": [{"worker": "c1"}], "track": [{"worker": "c2"}]},
        }
    )


@pytest.mark.parametrize("rate", [15.0, 30.0, 38.0])
def test_chain_prediction_matches_the_des(tiny_dict, rate):
    tiny_dict["slo"]["latency_ms"] = 120.0
    sc = scenario_from_dict(tiny_dict, "<tiny>")
    plan = chain_plan()
    pred = predict_plan(sc, plan, {"cam": rate})
    lat, att = des_latencies(sc, plan, {"cam": rate}, "lognormal", 12_000 / rate)
    assert pred.stable
    assert pred.attainment == pytest.approx(att, abs=0.03)
    assert pred.mean_s == pytest.approx(lat.mean(), rel=0.08)
    assert pred.latency_s == pytest.approx(np.quantile(lat, 0.99), rel=0.15)
    # the upload edge -> cloud: 100 KB at 125 MB/s plus 10 ms
    assert pred.workers["c1"].transfer_s["cam"] == pytest.approx(100 / (1024 * 125) + 0.010)


def join_scenario():
    """Two sources feed two operators whose outputs a third joins."""
    prof = [
        {"operator": "a", "worker_type": "cpu", "p50_ms": 40, "p90_ms": 60},
        {"operator": "b", "worker_type": "cpu", "p50_ms": 25, "p90_ms": 50},
        {"operator": "j", "worker_type": "cpu", "p50_ms": 20, "p90_ms": 30},
    ]
    return scenario_from_dict(
        {
            "name": "join",
            "tiers": ["edge"],
            "sources": [{"name": "s1", "rate": 10.0}, {"name": "s2", "rate": 10.0}],
            "operators": [{"name": "a"}, {"name": "b"}, {"name": "j"}],
            "edges": [
                {"from": "s1", "to": "a", "message_kb": 10.0},
                {"from": "s2", "to": "b", "message_kb": 10.0},
                {"from": "a", "to": "j", "message_kb": 1.0},
                {"from": "b", "to": "j", "message_kb": 1.0},
            ],
            "workers": [{"name": "w", "type": "cpu", "tier": "edge", "price": 1.0, "count": 4}],
            "profiles": prof,
            "slo": {"min_accuracy": 0.0, "latency_ms": 250.0},
        },
        "<join>",
    )


@pytest.mark.parametrize("rate", [6.0, 12.0, 17.0])
def test_join_prediction_matches_the_des(rate):
    sc = join_scenario()
    plan = plan_from_dict(
        {
            "worker_assignment": {
                "a": [{"worker": "w-1"}],
                "b": [{"worker": "w-2"}],
                "j": [{"worker": "w-3"}, {"worker": "w-4", "rate": rate / 2}],
            }
        }
    )
    rates = {"s1": rate, "s2": rate}
    pred = predict_plan(sc, plan, rates)
    lat, att = des_latencies(sc, plan, rates, "lognormal", 12_000 / rate)
    assert pred.workers["w-3"].share == pytest.approx(0.5)
    assert pred.attainment == pytest.approx(att, abs=0.03)
    assert pred.mean_s == pytest.approx(lat.mean(), rel=0.08)
    assert {p.path for p in pred.paths} == {("s1", "a", "j"), ("s2", "b", "j")}
    # a path alone is never slower than the request, which waits for both
    assert all(p.attainment >= pred.attainment - 1e-9 for p in pred.paths)


def test_an_operator_without_workers_or_a_saturated_worker_is_unstable(tiny):
    plan = plan_from_dict(
        {"model_assignment": {"detect": "small"}, "worker_assignment": {"detect": ["e1"]}}
    )
    pred = predict_plan(tiny, plan)
    assert not pred.stable and pred.attainment == 0.0 and not pred.meets_target
    assert any("track" in n for n in pred.notes)
    plan = plan_from_dict(
        {
            "model_assignment": {"detect": "large"},
            "worker_assignment": {"detect": ["e1"], "track": ["c2"]},
        }
    )
    pred = predict_plan(tiny, plan, {"cam": 20.0})  # 20 req/s on a 160 ms worker
    assert not pred.stable and pred.latency_s == math.inf
    assert pred.to_dict()["workers"]["e1"]["stable"] is False


# --------------------------------------------------------------------------- batching


def batched_worker(a_ms: float, c_ms: float, bmax: int, sigma: float, rate: float, **extra):
    """One worker whose batch of n takes a lognormal of mean a + c n (ms), log-sd sigma."""
    z = 1.2815515655446004
    rows = []
    for n in range(1, bmax + 1):
        p50 = (a_ms + c_ms * n) * math.exp(-sigma * sigma / 2)
        rows.append({"batch": n, "p50_ms": p50, "p90_ms": p50 * math.exp(sigma * z)})
    d = single_worker_scenario(p50_ms=rows[0]["p50_ms"], rate=rate).model_dump(by_alias=True)
    d["profiles"][0].update(p90_ms=rows[0]["p90_ms"], batches=rows[1:])
    d["slo"]["latency_ms"] = extra.pop("bound_ms", 1000.0)
    d.update(extra)
    return scenario_from_dict(d, "<batched>")


@pytest.mark.parametrize(
    ("b", "u", "tau", "bound_ms"),
    [(4, 0.5, 0.0, 300.0), (4, 0.85, 0.0, 500.0), (8, 0.7, 0.0, 450.0), (4, 0.6, 0.02, 350.0)],
)
def test_batched_worker_prediction_matches_the_des(b, u, tau, bound_ms):
    # batch of n: 50 + 20 n ms, lognormal with log-sd 0.3
    m_b = (50 + 20 * b) / 1000.0
    lam = u * b / m_b
    sc = batched_worker(50.0, 20.0, b, 0.3, lam, bound_ms=bound_ms, batch_wait_timeout_s=tau)
    plan = plan_from_dict({"worker_assignment": {"op": [{"worker": "w", "batch": b}]}})
    pred = predict_plan(sc, plan)
    sim = DesSimulator(SimConfig(timeout_s=1e9))
    sim.reset(sc, plan, seed=4)
    sim.advance(1000.0, {"src": lam})
    lat: list[float] = []
    served = 0.0
    for _ in range(4):
        m = sim.advance(40_000 / lam, {"src": lam})
        lat += sim.interval_latencies()
        served += m.completed
    arr = np.array(lat) / 1000.0
    st = pred.workers["w"]
    assert st.batch == b and st.sojourn.stable
    assert pred.attainment == pytest.approx(float(np.mean(arr <= bound_ms / 1000)), abs=0.01)
    assert pred.mean_s == pytest.approx(arr.mean(), rel=0.04)
    # and the shape: P(T <= the DES's 95th percentile) (its p99 is too noisy at these lengths)
    assert st.sojourn.cdf(np.quantile(arr, [0.95]))[0] == pytest.approx(0.95, abs=0.01)


def test_batched_slo_safe_rate_and_saturation():
    sc = batched_worker(50.0, 20.0, 4, 0.3, 10.0)
    bs = batch_service(sc, "op", "default", "w")
    cap = bs.max_throughput(4)
    assert cap == pytest.approx(4 / bs.fit(4).mean_s)
    lam = slo_safe_rate(bs, 0.4, 0.01, batch=4)
    assert 0 < lam < cap
    assert worker_sojourn(bs, lam, 4).survival(0.4) <= 0.01 + 1e-9
    assert worker_sojourn(bs, lam * 1.01, 4).survival(0.4) > 0.01
    # batching lifts the safe rate above batch 1's, whose capacity is 1 / E[S_1]
    assert lam > slo_safe_rate(bs, 0.4, 0.01) and lam > 1 / bs.fit(1).mean_s
    s = worker_sojourn(bs, cap * 1.01, 4)
    assert not s.stable and s.mean_s == math.inf and s.survival(10.0) == 1.0
    with pytest.raises(ValueError, match="BatchService"):
        worker_sojourn(bs.fit(1), 1.0, batch=2)


@pytest.mark.parametrize(("sigma", "b", "u"), [(0.6, 2, 0.95), (0.1, 8, 0.9), (0.3, 4, 0.5)])
def test_batched_sojourn_does_not_depend_on_its_grid(monkeypatch, sigma, b, u):
    # the grid must resolve a service even when the queue is long and the service spread wide
    # (a span of k times the longest service once made the cells 7x the mean service at
    # sigma 0.6, b 2, u 0.95, and the mean 44 % short of the DES's)
    from jbrl.planning.latency import batching

    sc = batched_worker(50.0, 20.0, b, sigma, 1.0)
    bs = batch_service(sc, "op", "default", "w")
    lam = u * bs.max_throughput(b)
    base = batching._batch_sojourn.__wrapped__(bs, lam, b, 0.0)
    monkeypatch.setattr(batching, "GRID_CELLS", 4 * batching.GRID_CELLS)
    fine = batching._batch_sojourn.__wrapped__(bs, lam, b, 0.0)
    assert base.h < 0.25 * bs.fit(b).mean_s
    assert base.mean_s == pytest.approx(fine.mean_s, rel=0.01)
    assert base.quantile(0.99) == pytest.approx(fine.quantile(0.99), rel=0.02)
