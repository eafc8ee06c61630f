"""The evaluation's outputs apart from the table: the latency CDF, file names, the progress bar."""

from __future__ import annotations

import numpy as np
import pytest

from jbrl.evaluation.aggregate import RunRecord
from jbrl.evaluation.plots import file_safe, latency_cdf
from jbrl.progress import ProgressBar


def test_latency_cdf_exact_from_samples():
    a = RunRecord("p", "t", 0, latency_sample=np.array([30.0, 10.0]))
    b = RunRecord("p", "t", 1, latency_sample=np.array([20.0, 40.0]))
    xs, ys, exact = latency_cdf([a, b])
    assert exact
    assert xs.tolist() == [10.0, 20.0, 30.0, 40.0]  # seeds pooled, sorted
    assert ys.tolist() == [0.25, 0.5, 0.75, 1.0]


def test_latency_cdf_approximate_from_interval_p99():
    run = RunRecord("p", "t", 0, series={"load": [1.0, 3.0, 0.0], "p99_ms": [100.0, 200.0, 9e9]})
    xs, ys, exact = latency_cdf([run])
    assert not exact
    assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= 0) and ys[-1] == pytest.approx(1.0)
    assert xs.max() == pytest.approx(1.25 * 200.0)  # the idle interval (load 0) is left out
    # the p99 knot: 99 % of each interval's requests are below its p99
    assert np.interp(200.0, xs, ys) == pytest.approx(0.99, abs=0.01)
    assert latency_cdf([RunRecord("p", "t", 0)])[0].size == 0


def test_file_safe():
    assert file_safe("milp-reactive:headroom=0.2") == "milp-reactive_headroom_0.2"
    assert file_safe("a/b c") == "a_b_c"
    assert file_safe("::") == "x"


@pytest.mark.parametrize("enabled", [False, True])
def test_progress_bar_counts(capsys, enabled):
    with ProgressBar(enabled, 10) as bar:
        bar.describe("x")
        bar.advance(3)
        bar.advance()
    assert (bar.done, bar.total, bar.description) == (4, 10, "evaluating x")
    if not enabled:
        assert capsys.readouterr() == ("", "")
