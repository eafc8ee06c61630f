"""Production-shaped generators (onoff, weekly, phased, flash_crowd) and the trace statistics:
seeded, the shapes they promise (heavy-tailed self-similar on/off, lower weekends, sources out
of lockstep, random flash crowds), bounded inputs, and statistics checked on known series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jbrl.errors import InputError
from jbrl.scenario.generators import GENERATORS, daily_shape, weekday_level
from jbrl.scenario.trace_stats import (
    binned,
    burst_lengths,
    hurst_aggregated_variance,
    lag1_autocorrelation,
    trace_statistics,
)
from jbrl.scenario.traces import Trace, generate_trace

NEW_KINDS = ["onoff", "weekly", "phased", "flash_crowd"]
SITES = {"a": 10.0, "b": 20.0, "c": 5.0}
DAY = 86400.0


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_seeded_and_seed_dependent(kind):
    a = generate_trace(kind, DAY, seed=7, sources=SITES)
    b = generate_trace(kind, DAY, seed=7, sources=SITES)
    c = generate_trace(kind, DAY, seed=8, sources=SITES)
    assert np.array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.columns == tuple(SITES) and len(a) == 1440
    assert np.isfinite(a.values).all() and (a.values >= 0).all()


@pytest.mark.parametrize("kind", ["onoff", "weekly", "phased"])
def test_long_run_mean_is_the_nominal_rate(kind):
    tr = generate_trace(kind, 14 * DAY, seed=3, step_s=300)
    assert tr.values[:, 0].mean() == pytest.approx(1.0, rel=0.08)


def test_onoff_is_heavy_tailed_and_self_similar():
    """Willinger et al.: Pareto on/off periods with tail index a give H = (3 - a) / 2 > 0.5;
    light tails (a large) give short-range dependence, H near 0.5."""
    heavy = generate_trace("onoff", 7 * DAY, seed=1, params={"alpha_on": 1.2, "alpha_off": 1.2})
    light = generate_trace("onoff", 7 * DAY, seed=1, params={"alpha_on": 8.0, "alpha_off": 8.0})
    h_heavy = hurst_aggregated_variance(heavy.values[:, 0])
    h_light = hurst_aggregated_variance(light.values[:, 0])
    assert h_heavy > 0.75 and h_light < 0.65 and h_heavy > h_light + 0.15


def test_onoff_more_clients_smooth_the_load():
    few = generate_trace("onoff", 2 * DAY, seed=2, params={"clients": 10})
    many = generate_trace("onoff", 2 * DAY, seed=2, params={"clients": 2000})
    cv = [tr.values[:, 0].std() / tr.values[:, 0].mean() for tr in (few, many)]
    assert cv[0] > 2 * cv[1]


def test_weekly_has_lower_weekends_and_a_daily_peak():
    tr = generate_trace(
        "weekly", 14 * DAY, seed=0, step_s=3600, params={"noise": 0, "weekend": 0.5}
    )
    v = tr.values[:, 0].reshape(14, 24)
    daily = v.mean(axis=1)
    weekdays = [d for d in range(14) if d % 7 < 5]
    weekends = [d for d in range(14) if d % 7 >= 5]
    assert daily[weekends].mean() == pytest.approx(0.5 * daily[weekdays].mean(), rel=1e-6)
    assert int(np.argmax(v[0])) in (13, 14)  # the peak hour (14:00, hour bins start on the hour)
    assert v.mean() == pytest.approx(1.0, rel=1e-6)


def test_daily_shape_and_weekday_level_helpers():
    mid = np.arange(24) * 3600.0 + 1800.0
    shape = daily_shape(mid, DAY, 14.0, 0.6, 0.0)
    assert shape.max() == pytest.approx(1.6, abs=0.02) and shape.min() == pytest.approx(
        0.4, abs=0.02
    )
    week = np.arange(7) * DAY + 1.0
    level = weekday_level(week, DAY, start_day=0, weekend=0.4)
    assert level.mean() == pytest.approx(1.0) and level[5] == pytest.approx(0.4 * level[0])


def test_phased_sources_peak_at_different_hours_and_burst_independently():
    tr = generate_trace(
        "phased", 7 * DAY, seed=4, sources=SITES, params={"spread_h": 8.0, "noise": 0.02}
    )
    stats = trace_statistics(tr)
    assert 6.0 <= stats["peak_spread_h"] <= 10.0
    assert stats["mean_pairwise_corr"] < 0.9
    assert not np.array_equal(tr.values[:, 0] / SITES["a"], tr.values[:, 1] / SITES["b"])
    single = generate_trace("phased", DAY, seed=4)  # one series without sources
    assert single.is_scale


def _crowd_peaks(x: np.ndarray) -> np.ndarray:
    """Largest value of each run above the base level 1."""
    above = np.concatenate(([0], (x > 1.02).astype(int), [0]))
    starts, ends = np.flatnonzero(np.diff(above) == 1), np.flatnonzero(np.diff(above) == -1)
    return np.array([x[a:b].max() for a, b in zip(starts, ends, strict=True)])


def test_flash_crowds_have_random_amplitudes_and_decays():
    common = {"per_day": 1, "noise": 0, "amp_median": 1.0}
    rand = generate_trace(
        "flash_crowd", 60 * DAY, seed=5, params={**common, "amp_sigma": 0.8, "decay_sigma": 0.8}
    )
    fixed = generate_trace(
        "flash_crowd", 60 * DAY, seed=5, params={**common, "amp_sigma": 0, "decay_sigma": 0}
    )
    assert rand.values.min() == pytest.approx(1.0, abs=1e-6)  # the base between crowds
    peaks = _crowd_peaks(rand.values[:, 0])
    assert len(peaks) >= 30 and np.percentile(peaks, 90) > 1.8 * np.percentile(peaks, 10)
    fixed_peaks = _crowd_peaks(fixed.values[:, 0])
    assert np.median(fixed_peaks) == pytest.approx(2.0, abs=0.05)  # base x (1 + amp_median)
    none = generate_trace("flash_crowd", DAY, seed=5, params={"per_day": 0, "noise": 0})
    assert np.allclose(none.values, 1.0)


def test_independent_option_breaks_lockstep():
    shared = generate_trace("flash_crowd", DAY, seed=1, sources=SITES)
    indep = generate_trace("flash_crowd", DAY, seed=1, sources=SITES, params={"independent": 1})
    ratio = shared.values / np.array(list(SITES.values()))
    assert np.allclose(ratio[:, 0], ratio[:, 1])
    r2 = indep.values / np.array(list(SITES.values()))
    assert not np.allclose(r2[:, 0], r2[:, 1])


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("onoff", {"alpha_on": 0.9}, "alpha_on"),
        ("onoff", {"clients": 100000, "on_mean_s": 1, "off_mean_s": 1}, "too many"),
        ("weekly", {"amplitude": 1.5}, "amplitude"),
        ("phased", {"spread_h": -1}, "spread_h"),
        ("flash_crowd", {"ar": 1.0}, "ar"),
        ("diurnal", {"period_s": 0}, "period_s"),
    ],
)
def test_out_of_range_parameters_are_input_errors(kind, params, match):
    with pytest.raises(InputError, match=match):
        generate_trace(kind, DAY, params=params)


def test_row_limit():
    with pytest.raises(InputError, match="rows"):
        generate_trace("constant", 6 * DAY, step_s=0.1)  # within trace_s, 5.2M rows
    with pytest.raises(InputError, match="trace_s"):
        generate_trace("constant", 1e9, step_s=60)


def test_every_kind_documents_its_defaults():
    for name, spec in GENERATORS.items():
        assert spec.defaults, name
        assert set(spec.bounds) <= set(spec.defaults), name


# --------------------------------------------------------------------------- statistics


def test_binned_averages_piecewise_constant_rates():
    tr = Trace(np.array([0.0, 30.0, 90.0]), np.array([[1.0], [3.0], [5.0]]), ("x",), 150.0)
    # minute 0: 30 s at 1 + 30 s at 3 = 2; minute 1: 30 s at 3 + 30 s at 5 = 4; last 30 s: 5
    np.testing.assert_allclose(binned(tr)[:, 0], [2.0, 4.0, 5.0])


def test_statistics_of_known_series():
    rng = np.random.default_rng(0)
    white = 10.0 + rng.normal(0, 1, 20000)
    assert abs(lag1_autocorrelation(white)) < 0.03
    assert hurst_aggregated_variance(white) == pytest.approx(0.5, abs=0.06)
    ar = np.empty(20000)
    ar[0] = 0.0
    eps = rng.normal(0, 1, 20000)
    for i in range(1, 20000):
        ar[i] = 0.9 * ar[i - 1] + eps[i]
    assert lag1_autocorrelation(ar) == pytest.approx(0.9, abs=0.02)
    x = np.ones(200)
    x[50:53] = 3.0
    x[120:130] = 2.0
    np.testing.assert_array_equal(burst_lengths(x, factor=1.5), [3, 10])
    assert math.isnan(lag1_autocorrelation(np.ones(10)))


def test_trace_statistics_fields():
    tr = Trace(np.arange(120) * 60.0, np.ones((120, 2)) * [1.0, 3.0], ("a", "b"), 7200.0)
    st = trace_statistics(tr)
    assert st["mean"] == pytest.approx(4.0) and st["peak_to_mean"] == pytest.approx(1.0)
    assert st["cv"] == pytest.approx(0.0) and st["bursts"] == 0 and st["columns"] == 2
