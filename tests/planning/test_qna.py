"""Arrival variability in the latency model (Whitt's QNA, :mod:`jbrl.planning.latency.queueing`):
the departure, split/merge, hybrid and time-scale formulas at their limits, Friedman's tandem
reduction as an invariant, and tandems of near-deterministic workers against the DES."""

from __future__ import annotations

import numpy as np
import pytest

from jbrl.planning.latency import fit_percentiles, predict_plan, worker_sojourn
from jbrl.planning.latency.queueing import (
    departure_scv,
    hybrid_scv,
    sender_weight,
    split_merge_scv,
    tandem_scv,
    wait_law,
    waits_tail,
)
from jbrl.planning.plan import plan_from_dict
from jbrl.scenario import scenario_from_dict
from tests.conftest import des_latencies as shared_des_latencies


def test_departures_are_the_arrivals_when_idle_and_the_service_when_saturated() -> None:
    assert departure_scv(0.0, 0.02, 1.0) == pytest.approx(1.0)
    assert departure_scv(1.0, 0.02, 1.0) == pytest.approx(0.02)
    assert departure_scv(0.8, 0.02, 1.0) == pytest.approx(0.64 * 0.02 + 0.36)
    assert departure_scv(1.7, 0.5, 1.0) == pytest.approx(0.5)  # clipped to r <= 1


def test_random_routing_moves_a_stream_toward_poisson_and_merging_averages_by_flow() -> None:
    assert split_merge_scv([(3.0, 1.0, 0.2)]) == pytest.approx(0.2)  # all of it: unchanged
    assert split_merge_scv([(3.0, 0.25, 0.2)]) == pytest.approx(0.25 * 0.2 + 0.75)
    two = split_merge_scv([(1.0, 1.0, 0.2), (3.0, 1.0, 0.6)])
    assert two == pytest.approx(0.25 * 0.2 + 0.75 * 0.6)
    assert split_merge_scv([]) == 1.0 and split_merge_scv([(0.0, 1.0, 0.1)]) == 1.0


def test_hybrid_weighs_the_long_run_variability_by_its_weight() -> None:
    assert hybrid_scv(0.0, 0.3) == pytest.approx(0.3)
    assert hybrid_scv(1.0, 0.3) == pytest.approx(1.0)
    assert hybrid_scv(0.25, 0.3, 2.0) == pytest.approx(0.25 * 2.0 + 0.75 * 0.3)
    w = np.linspace(0.0, 1.0, 11)
    vals = [hybrid_scv(x, 0.3) for x in w]
    assert all(a <= b + 1e-12 for a, b in zip(vals, vals[1:], strict=False))


def test_a_receiver_sees_no_more_long_run_variability_than_its_busy_sender_lets_through() -> None:
    grid = np.linspace(0.0, 0.99, 34)
    for r in grid:
        ws = [sender_weight(rs, r) for rs in grid]
        assert all(0.0 <= w <= r * r + 1e-12 for w in ws)  # never above the receiver's r^2
        assert all(a >= b - 1e-12 for a, b in zip(ws, ws[1:], strict=False))  # busier sender
    assert sender_weight(0.2, 0.9) == pytest.approx(0.81)  # a light sender: the receiver's r^2
    assert sender_weight(0.9, 0.9) == pytest.approx(0.5)  # equal time scales: half
    assert sender_weight(0.99, 0.5) < 0.001  # a saturated sender's regularity passes on
    assert sender_weight(0.5, 1.0) == 1.0


@pytest.mark.parametrize("q", [0.9, 0.99, 0.999])
@pytest.mark.parametrize(("rs", "r"), [(0.5, 0.7), (0.7, 0.75), (0.3, 0.9), (0.8, 0.95)])
def test_a_dedicated_pair_waits_as_its_slower_server_alone_at_the_percentile(
    rs: float, r: float, q: float
) -> None:
    """Friedman's reduction as the model holds it: with the arrival SCV :func:`tandem_scv`
    returns, the sender's and the receiver's waits (independent, laid out as the batch-1
    sojourn lays them out) exceed the slower server's q-quantile wait with probability 1 - q."""
    fa = fit_percentiles(90, 95, "lognormal")
    fb = fit_percentiles(100, 105, "lognormal")
    lam = r / fb.mean_s
    ms = rs / lam
    sender = (rs, 1.0, fa.scv, fa.a3, ms)
    c2 = tandem_scv(sender, (r, fb.scv, fb.a3, fb.mean_s), q)
    assert 0.0 < c2 < 1.0
    pb, sb, eb = wait_law(r, 1.0, fb.scv, fb.a3, fb.mean_s)
    t = sb + eb * np.log(pb / (1.0 - q))
    both = (wait_law(rs, 1.0, fa.scv, fa.a3, ms), wait_law(r, c2, fb.scv, fb.a3, fb.mean_s))
    assert waits_tail(t, both) == pytest.approx(1.0 - q, rel=1e-6)
    # a slower sender covers the receiver's service: no wait at all
    assert tandem_scv((r, 1.0, fb.scv, fb.a3, fb.mean_s), (rs, fa.scv, fa.a3, ms), q) == 0.0


def tandem(rate: float, p50_a: float = 100.0, p50_b: float = 90.0) -> tuple:
    """src -> a (worker wa) -> b (worker wb), both near-deterministic (p90 5 ms over p50)."""
    prof = [
        {"operator": "a", "worker_type": "cpu", "p50_ms": p50_a, "p90_ms": p50_a + 5},
        {"operator": "b", "worker_type": "cpu", "p50_ms": p50_b, "p90_ms": p50_b + 5},
    ]
    sc = scenario_from_dict(
        {
            "name": "tandem",
            "tiers": ["edge"],
            "sources": [{"name": "src", "rate": rate}],
            "operators": [{"name": "a"}, {"name": "b"}],
            "edges": [
                {"from": "src", "to": "a", "message_kb": 1.0},
                {"from": "a", "to": "b", "message_kb": 1.0},
            ],
            "workers": [
                {"name": "wa", "type": "cpu", "tier": "edge", "price": 1.0},
                {"name": "wb", "type": "cpu", "tier": "edge", "price": 1.0},
            ],
            "profiles": prof,
            "slo": {"min_accuracy": 0.0, "latency_ms": 900.0},
        },
        "<tandem>",
    )
    plan = plan_from_dict({"worker_assignment": {"a": [{"worker": "wa"}], "b": [{"worker": "wb"}]}})
    return sc, plan


def des_latencies(sc, plan, rate: float) -> np.ndarray:  # noqa: ANN001
    """4 x 1,500 s of DES after 200 s of warm-up: request latencies in seconds."""
    return shared_des_latencies(sc, plan, {"src": rate}, seconds=6000.0, warmup=200.0, seed=3)


def test_a_busy_deterministic_stage_smooths_the_next_and_the_prediction_stays_safe() -> None:
    """wa at utilisation 0.85 spaces its departures at least one 100 ms service apart; wb,
    with 90 ms services, never waits in a deterministic tandem (Friedman) and hardly waits in
    the DES. The prediction follows: wb's wait is next to nothing, the mean within 5 % of the
    DES (0.479 s against 0.463 s; Poisson arrivals at wb: 0.62 s; QNA with the ``r^2`` hybrid
    before the tandem reduction: 0.58 s), the attainment on the safe side of it."""
    fit_a = fit_percentiles(100, 105, "lognormal")
    rate = 0.85 / fit_a.mean_s
    sc, plan = tandem(rate)
    pred = predict_plan(sc, plan, {"src": rate})
    wa, wb = pred.workers["wa"], pred.workers["wb"]
    assert wa.arrival_scv == pytest.approx(1.0)  # from the Poisson source
    cd = departure_scv(wa.sojourn.utilization, wa.service_scv, 1.0)
    assert wb.arrival_scv < cd < 1.0  # smoother than wa's departures: spaced by wa's service
    fit_b = fit_percentiles(90, 95, "lognormal")
    assert wb.sojourn.mean_s < 1.03 * fit_b.mean_s  # its services' jitter: 1.5 ms

    arr = des_latencies(sc, plan, rate)
    des_mean = float(arr.mean())
    des_att = float(np.mean(arr <= 0.9))
    poisson_b = worker_sojourn(fit_b, rate).mean_s
    poisson_mean = wa.sojourn.mean_s + poisson_b + sum(wa.transfer_s.values())
    poisson_mean += sum(wb.transfer_s.values())
    assert pred.mean_s == pytest.approx(des_mean, rel=0.05)
    assert pred.mean_s < poisson_mean
    assert pred.attainment <= des_att + 1e-3


def test_a_slower_receiver_of_a_dedicated_sender_is_predicted_near_the_des() -> None:
    """wa (90 ms) feeds wb (100 ms) at wb's utilisation 0.7: the pair waits as wb alone would.
    Predicted against 6,000 s of DES: attainment of the 900 ms bound 99.37 % vs 99.06 %, p99
    0.844 s vs 0.890 s (before the tandem reduction: 99.14 %, 0.881 s)."""
    fit_b = fit_percentiles(100, 105, "lognormal")
    rate = 0.7 / fit_b.mean_s
    sc, plan = tandem(rate, p50_a=90.0, p50_b=100.0)
    pred = predict_plan(sc, plan, {"src": rate})
    arr = des_latencies(sc, plan, rate)
    assert pred.attainment == pytest.approx(float(np.mean(arr <= 0.9)), abs=0.005)
    assert pred.latency_s == pytest.approx(float(np.quantile(arr, 0.99)), rel=0.07)
