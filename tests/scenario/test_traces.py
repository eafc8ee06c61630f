"""Traces: the CSV format, lookups, seeded generators, clear errors for malformed files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jbrl.errors import InputError
from jbrl.scenario.generators import GENERATORS
from jbrl.scenario.traces import (
    TRACE_KINDS,
    Trace,
    constant_trace,
    generate_trace,
    load_trace,
    parse_trace,
)

CSV = """# duration_s: 300
time_s,ReadImage,ReadSpeech
0,10,10
60,20,15
120,5,5
"""


def test_piecewise_constant_lookups():
    tr = parse_trace(CSV, "t.csv")
    assert tr.columns == ("ReadImage", "ReadSpeech")
    assert tr.duration == 300
    assert tr.rates_at(0) == {"ReadImage": 10, "ReadSpeech": 10}
    assert tr.rates_at(59.999)["ReadImage"] == 10
    assert tr.rates_at(60)["ReadImage"] == 20  # a row holds from its time_s on
    assert tr.rates_at(1e9)["ReadImage"] == 5  # the last row holds to the end
    assert tr.max_over(0, 60) == {"ReadImage": 10, "ReadSpeech": 10}
    assert tr.max_over(30, 61) == {"ReadImage": 20, "ReadSpeech": 15}
    assert tr.max_over(130, 300)["ReadImage"] == 5
    assert tr.peak() == {"ReadImage": 20, "ReadSpeech": 15}
    assert tr.mean_over(0, 120)["ReadImage"] == pytest.approx(15)
    segs = tr.segments(30, 150)
    assert [d for d, _ in segs] == [30, 60, 30]
    assert [r["ReadImage"] for _, r in segs] == [10, 20, 5]


def test_duration_defaults_to_last_time_and_first_row_holds_before():
    tr = parse_trace("time_s,scale\n10,1.5\n20,0.5\n")
    assert tr.duration == 20
    assert tr.rates_at(0) == {"scale": 1.5}


def test_scale_column_multiplies_nominal_rates(jellybean):
    tr = parse_trace("time_s,scale\n0,0.5\n60,2\n").for_scenario(jellybean)
    assert tr.columns == ("ReadImage", "ReadSpeech")
    assert tr.rates_at(0) == {"ReadImage": 20.0, "ReadSpeech": 20.0}
    assert tr.rates_at(61)["ReadSpeech"] == 80.0


def test_columns_are_reordered_to_the_scenario(jellybean):
    tr = parse_trace("time_s,ReadSpeech,ReadImage\n0,1,2\n").for_scenario(jellybean)
    assert tr.rates_at(0) == {"ReadImage": 2.0, "ReadSpeech": 1.0}


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("time_s,ReadImage\n0,-1\n", "line 2.ReadImage", "negative"),
        ("time_s,ReadImage\n0,1\n0,2\n", "line 3.time_s", "increase"),
        ("time_s,ReadImage\n60,1\n0,2\n", "line 3.time_s", "increase"),
        ("time_s,ReadImage\n0,1,2\n", "line 2", "fields"),
        ("time_s,ReadImage,ReadSpeech\n0,1\n", "line 2", "fields"),
        ("time_s,ReadImage\n0,nan\n", "line 2.ReadImage", "finite"),
        ("time_s,ReadImage\n0,inf\n", "line 2.ReadImage", "finite"),
        ("time_s,ReadImage\n0,lots\n", "line 2.ReadImage", "number"),
        ("t,ReadImage\n0,1\n", "header", "time_s"),
        ("time_s\n0\n", "header", "column"),
        ("time_s,scale,ReadImage\n0,1,1\n", "header", "only"),
        ("time_s,a,a\n0,1,1\n", "header", "duplicate"),
        ("# duration_s: -5\ntime_s,a\n0,1\n", "duration_s", "negative"),
    ],
)
def test_malformed_traces_name_field_and_value(text, field, words):
    with pytest.raises(InputError) as info:
        parse_trace(text, "bad.csv")
    err = info.value
    assert err.file == "bad.csv"
    assert err.field == field
    assert words in str(err)


def test_empty_and_header_only():
    with pytest.raises(InputError, match="empty"):
        parse_trace("", "e.csv")
    with pytest.raises(InputError, match="no data rows"):
        parse_trace("time_s,scale\n", "e.csv")


def test_unknown_and_missing_sources(jellybean):
    with pytest.raises(InputError) as info:
        parse_trace("time_s,ReadImage,Camera\n0,1,1\n", "u.csv").for_scenario(jellybean)
    assert info.value.value == "Camera" and "unknown source" in str(info.value)
    with pytest.raises(InputError, match="ReadSpeech"):
        parse_trace("time_s,ReadImage\n0,1\n", "m.csv").for_scenario(jellybean)


def test_load_trace_file_errors(tmp_path, jellybean):
    with pytest.raises(InputError, match="no such file"):
        load_trace(tmp_path / "nope.csv")
    p = tmp_path / "t.csv"
    p.write_text(CSV)
    tr = load_trace(p, jellybean)
    assert tr.file == str(p) and tr.columns == ("ReadImage", "ReadSpeech")


@pytest.mark.parametrize("kind", TRACE_KINDS)
def test_generators_are_seeded_and_round_trip(kind, tmp_path, jellybean):
    a = generate_trace(kind, 7200, seed=3, sources=jellybean, step_s=30)
    b = generate_trace(kind, 7200, seed=3, sources=jellybean, step_s=30)
    assert np.array_equal(a.values, b.values)
    assert len(a) == 240 and a.duration == 7200
    assert (a.values >= 0).all() and np.isfinite(a.values).all()
    # one multiplier for all sources (joins stay balanced), except the per-source kinds
    lockstep = np.array_equal(a.values[:, 0], a.values[:, 1])
    assert lockstep != GENERATORS[kind].per_source
    path = tmp_path / f"{kind}.csv"
    a.save(path)
    c = load_trace(path)
    assert c.duration == a.duration
    np.testing.assert_allclose(c.values, a.values, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["diurnal", "bursty", "random_walk"])
def test_random_generators_depend_on_seed(kind):
    a = generate_trace(kind, 3600, seed=1)
    b = generate_trace(kind, 3600, seed=2)
    assert a.is_scale and not np.array_equal(a.values, b.values)


def test_generator_shapes():
    step = generate_trace("step", 600, params={"low": 0.5, "high": 2, "at_s": 300})
    assert step.rates_at(0)["scale"] == 0.5 and step.rates_at(300)["scale"] == 2
    diurnal = generate_trace("diurnal", 86400, step_s=600, params={"noise": 0})
    vals = diurnal.values[:, 0]
    assert vals.min() == pytest.approx(0.5, abs=0.01) and vals.max() == pytest.approx(1.5, abs=0.01)
    assert vals[0] < 0.6 and abs(vals[len(vals) // 2] - 1.5) < 0.01  # low at night, peak midday
    bursty = generate_trace("bursty", 86400, seed=5, params={"noise": 0, "flash_per_hour": 0})
    assert set(np.round(bursty.values[:, 0], 6)) <= {1.0, 2.0}
    assert (bursty.values[:, 0] == 2.0).any()  # some bursts in a day
    walk = generate_trace("random_walk", 86400, seed=5)
    assert walk.values.min() >= 0.1 and walk.values.max() <= 3.0


def test_generator_input_errors():
    with pytest.raises(InputError, match="unknown trace kind"):
        generate_trace("sine", 60)
    with pytest.raises(InputError, match="unknown parameter"):
        generate_trace("step", 60, params={"height": 2})
    with pytest.raises(InputError, match="positive"):
        generate_trace("constant", 0)


def test_constant_trace(jellybean):
    tr = constant_trace(jellybean, 120, scale=0.5)
    assert tr.rates_at(100) == {"ReadImage": 20.0, "ReadSpeech": 20.0}
    assert tr.duration == 120


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(0.5, 100), min_size=1, max_size=8),
    vals=st.lists(st.floats(0, 50), min_size=9, max_size=9),
    t0=st.floats(0, 400),
    width=st.floats(0.1, 300),
)
def test_window_properties(gaps, vals, t0, width):
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    values = np.array(vals[: len(times)])[:, None]
    tr = Trace(times, values, ("a",), float(times[-1]) + 10)
    t1 = t0 + width
    peak = tr.max_over(t0, t1)["a"]
    segs = tr.segments(t0, t1)
    assert math.isclose(sum(d for d, _ in segs), width, rel_tol=1e-9, abs_tol=1e-9)
    assert max(r["a"] for _, r in segs) == peak
    for t in np.linspace(t0, t1, 7, endpoint=False):
        assert tr.rates_at(float(t))["a"] <= peak
    mean = tr.mean_over(t0, t1)["a"]
    assert min(r["a"] for _, r in segs) - 1e-9 <= mean <= peak + 1e-9
