"""The damped-trend forecaster (jbrl.scenario.forecast) and the milp-predictive baseline."""

from __future__ import annotations

import math

import pytest

from jbrl.agents.policy import ControlState, get_policy
from jbrl.errors import InputError
from jbrl.planning.coverage import coverage, plan_signature
from jbrl.scenario import load_scenario
from jbrl.scenario.forecast import HoltForecaster, RateForecaster


def test_constant_series_forecasts_itself_with_no_band() -> None:
    f = HoltForecaster()
    for _ in range(30):
        f.update(7.0)
    assert f.forecast(1) == pytest.approx(7.0)
    assert f.forecast(5) == pytest.approx(7.0)
    assert f.upper(3, 2.0) == pytest.approx(7.0)


def test_undamped_trend_extrapolates_a_ramp() -> None:
    f = HoltForecaster(alpha=0.8, beta=0.5, phi=1.0)
    for t in range(60):
        f.update(10.0 + 0.5 * t)
    assert f.forecast(1) == pytest.approx(10.0 + 0.5 * 60, rel=1e-3)
    assert f.forecast(4) == pytest.approx(10.0 + 0.5 * 63, rel=1e-3)


def test_damped_trend_stays_below_the_ramp_and_band_is_above_the_forecast() -> None:
    f = HoltForecaster(phi=0.8)
    for t in range(40):
        f.update(10.0 + 0.5 * t + (1.0 if t % 2 else -1.0))
    assert f.forecast(10) < 10.0 + 0.5 * 49
    assert f.mad > 0
    assert f.upper(3, 2.0) > f.forecast(3)


def test_rate_forecaster_is_incremental_and_restarts_on_a_new_run() -> None:
    hist = [{"a": 1.0 + t, "b": 5.0} for t in range(12)]
    once, step = RateForecaster(), RateForecaster()
    once.feed(hist)
    for k in range(1, len(hist) + 1):
        step.feed(hist[:k])
    assert once.forecast(2) == step.forecast(2)
    step.feed(hist[:3])  # shorter: a new run
    fresh = RateForecaster()
    fresh.feed(hist[:3])
    assert step.forecast(2) == fresh.forecast(2)


def test_missing_observation_keeps_the_state() -> None:
    f = HoltForecaster()
    for x in (3.0, 4.0, 5.0):
        f.update(x)
    before = (f.level, f.trend, f.mad)
    f.update(math.nan)
    assert (f.level, f.trend, f.mad) == before


@pytest.mark.parametrize("bad", ["alpha=0", "phi=1.5", "horizon=0", "z=-1"])
def test_bad_parameters_are_named(bad: str) -> None:
    with pytest.raises(InputError) as e:
        get_policy(f"milp-predictive:{bad}")
    assert bad.split("=")[0] in str(e.value)


@pytest.mark.slow
def test_predictive_plans_ahead_of_a_rising_load_and_like_hysteresis_on_a_flat_one() -> None:
    s = load_scenario("vqa")
    nominal = s.nominal_rates()
    ramp = [{k: v * (0.5 + 0.05 * t) for k, v in nominal.items()} for t in range(10)]
    nxt = {k: v * (0.5 + 0.05 * 12) for k, v in nominal.items()}  # two intervals on
    # max_scale=1: the plain cheapest plan for the target (no search for a roomier one)
    pred = get_policy("milp-predictive:headroom=0:horizon=3:max_scale=1")
    hyst = get_policy("milp-hysteresis:headroom=0:max_scale=1")
    for p in (pred, hyst):
        p.reset(s, 0)
    plans = {p.name: p.decide(ControlState(s, 600.0, 60.0, None, list(ramp))) for p in (pred, hyst)}
    assert coverage(s, plans["milp-predictive"], nxt).covers
    assert not coverage(s, plans["milp-hysteresis"], nxt).covers
    flat = [dict(nominal) for _ in range(10)]
    pred.reset(s, 0)
    hyst.reset(s, 0)
    a = pred.decide(ControlState(s, 600.0, 60.0, None, list(flat)))
    b = hyst.decide(ControlState(s, 600.0, 60.0, None, list(flat)))
    assert plan_signature(s, a) == plan_signature(s, b)
