"""``jbrl trace generate --scenario``: a generated trace stays within the load the scenario
sustains (``jbrl plan --max-rate``) unless ``--no-cap``, which warns with the numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jbrl.cli import main
from jbrl.planning.milp import max_rate
from jbrl.scenario import load_scenario
from jbrl.scenario.traces import generate_trace, load_trace


@pytest.fixture(scope="module")
def vqa_max_rates() -> dict[str, float]:
    mr = max_rate(load_scenario("vqa"))
    assert mr.status != "infeasible"
    return mr.rates


def _generate(capsys, path, *extra: str) -> tuple[dict, str]:
    code = main(
        ["trace", "generate", "--kind", "bursty", "--duration", "7200", "--scenario", "vqa",
         "-o", str(path), "--json", *extra]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out), out.err


def test_default_bursty_trace_peaks_within_max_rate(tmp_path, capsys, vqa_max_rates):
    summary, err = _generate(capsys, tmp_path / "b.csv")
    trace = load_trace(tmp_path / "b.csv")
    peak = trace.peak()
    for src, limit in vqa_max_rates.items():
        assert peak[src] <= limit, (src, peak[src], limit)
    info = summary["sustainable"]
    assert info["raw_peak_scale"] > info["max_scale"]  # the default bursty trace goes above ...
    assert info["capped_rows"] > 0  # ... so rows were capped, and the user is told how many
    assert f"capped {info['capped_rows']} of {summary['rows']} rows" in " ".join(err.split())
    # below the cap the trace is the uncapped one (same seed, same draws)
    raw = generate_trace("bursty", 7200, 0, sources=load_scenario("vqa"))
    below = raw.values.max(axis=1) < min(vqa_max_rates.values())
    assert np.array_equal(trace.values[below], raw.values[below])


def test_no_cap_keeps_the_peak_and_warns_with_numbers(tmp_path, capsys, vqa_max_rates):
    summary, err = _generate(capsys, tmp_path / "raw.csv", "--no-cap")
    peak = load_trace(tmp_path / "raw.csv").peak()
    assert any(peak[s] > v for s, v in vqa_max_rates.items())
    info = summary["sustainable"]
    assert info["capped_rows"] == 0 and info["rows_above"] > 0
    text = " ".join(err.split())
    assert "warning" in text and f"{info['raw_peak_scale']:.4g}x" in text
    assert f"{info['cap_scale']:g}x" in text


def test_trace_within_limit_is_left_alone(tmp_path, capsys):
    code = main(
        ["trace", "generate", "--kind", "constant", "--duration", "600", "--scenario", "vqa",
         "-p", "level=0.5", "-o", str(tmp_path / "c.csv"), "--json"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0 and out.err == ""
    assert json.loads(out.out)["sustainable"]["rows_above"] == 0
