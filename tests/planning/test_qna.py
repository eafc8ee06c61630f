"""Arrival variability in the latency model (Whitt's QNA, :mod:`jbrl.planning.latency.queueing`):
the departure, split/merge and hybrid formulas at their limits, and a tandem of busy,
near-deterministic workers against the DES."""

from __future__ import annotations

import numpy as np
import pytest

from jbrl.planning.latency import fit_percentiles, predict_plan, worker_sojourn
from jbrl.planning.latency.queueing import departure_scv, hybrid_scv, split_merge_scv
from jbrl.planning.plan import plan_from_dict
from jbrl.scenario import scenario_from_dict
from jbrl.sim import DesSimulator, SimConfig


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


def test_hybrid_weighs_the_long_run_variability_by_the_receivers_utilisation() -> None:
    assert hybrid_scv(0.0, 0.3) == pytest.approx(0.3)
    assert hybrid_scv(1.0, 0.3) == pytest.approx(1.0)
    assert hybrid_scv(0.5, 0.3, 2.0) == pytest.approx(0.25 * 2.0 + 0.75 * 0.3)
    r = np.linspace(0.0, 1.0, 11)
    vals = [hybrid_scv(x, 0.3) for x in r]
    assert all(a <= b + 1e-12 for a, b in zip(vals, vals[1:], strict=False))


def tandem(rate: float) -> tuple:
    """src -> a (worker wa) -> b (worker wb), both near-deterministic (p90 5 % over p50)."""
    prof = [
        {"operator": "a", "worker_type": "cpu", "p50_ms": 100, "p90_ms": 105},
        {"operator": "b", "worker_type": "cpu", "p50_ms": 90, "p90_ms": 95},
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


def test_a_busy_deterministic_stage_smooths_the_next_and_the_prediction_stays_safe() -> None:
    """wa at utilisation 0.85 spaces its departures at least one service apart; wb, faster,
    hardly waits in the DES. The prediction moves from Poisson's toward the DES and stays on the
    safe side of it (the hybrid keeps part of the long-run variability: here 0.58 s against the
    DES's 0.46 s and Poisson's 0.62 s)."""
    fit_a = fit_percentiles(100, 105, "lognormal")
    rate = 0.85 / fit_a.mean_s
    sc, plan = tandem(rate)
    pred = predict_plan(sc, plan, {"src": rate})
    wa, wb = pred.workers["wa"], pred.workers["wb"]
    assert wa.arrival_scv == pytest.approx(1.0)  # from the Poisson source
    # smoother than Poisson, not as smooth as wa's departures (the hybrid's long-run part)
    cd = departure_scv(wa.sojourn.utilization, wa.service_scv, 1.0)
    assert cd < wb.arrival_scv < 1.0

    sim = DesSimulator(SimConfig(service="lognormal", timeout_s=1e9))
    sim.reset(sc, plan, seed=3)
    sim.advance(200.0, {"src": rate})
    lat: list[float] = []
    for _ in range(4):
        sim.advance(1500.0, {"src": rate})
        lat += sim.interval_latencies()
    arr = np.array(lat) / 1000.0
    des_mean = float(arr.mean())
    des_att = float(np.mean(arr <= 0.9))

    # Poisson arrivals at wb would add a wait the DES does not see
    fit_b = fit_percentiles(90, 95, "lognormal")
    poisson_b = worker_sojourn(fit_b, rate).mean_s
    poisson_mean = wa.sojourn.mean_s + poisson_b + sum(wa.transfer_s.values())
    poisson_mean += sum(wb.transfer_s.values())
    assert des_mean < pred.mean_s < poisson_mean
    assert pred.attainment <= des_att + 1e-3
