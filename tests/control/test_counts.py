"""One set of counts: the controller's stdout, summary.json, /metrics and the decision log agree;
this run's counters and the cumulative ones (after a --state resume) are told apart."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jbrl.cli.control_cmd import _print_summary
from jbrl.control import read_state
from jbrl.scenario import Scenario
from jbrl.scenario.traces import constant_trace
from tests.control.test_control import (
    control_scenario,
    decisions,
    make_controller,
    run_and_scrape_metrics,
)


@pytest.fixture
def scen() -> Scenario:
    return control_scenario()


def test_counts_agree(scen: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a load above what the start plan carries: decisions, plan changes, drops all happen
    trace = constant_trace(scen, math.inf, scale=0.9)
    ctl = make_controller(scen, trace, tmp_path, duration=200.0, speedup=100.0)
    summary, raw = run_and_scrape_metrics(ctl)
    text = raw.decode()
    assert 'reason="none"' not in text  # no placeholder series
    fams = {f.name: f for f in text_string_to_metric_families(text)}

    def metric(name: str) -> float:
        return sum(s.value for s in fams[name].samples)

    ds = decisions(tmp_path)
    reports = [d for d in ds if "metrics" in d]
    last = reports[-1]["counts"]
    counts = summary["backend_counts"]
    arrived = sum(d["metrics"]["arrivals"] for d in reports)
    completed = sum(d["metrics"]["completed"] for d in reports)
    assert arrived > 1000
    assert summary["arrivals"] == counts["arrived"] == last["arrived"] == arrived
    assert summary["completed"] == counts["completed"] == last["completed"] == completed
    assert summary["dropped"] == sum(counts["dropped"].values()) == sum(last["dropped"].values())
    assert metric("jbrl_requests_arrived") == arrived
    assert metric("jbrl_requests_completed") == completed
    assert metric("jbrl_requests_dropped") == summary["dropped"]
    assert metric("jbrl_in_flight_requests") == counts["in_flight"] == summary["in_flight"]
    n = summary["counters"]["decisions"]
    assert n == len(ds) == metric("jbrl_decisions") and summary["resumed"] is False
    assert summary["counters"].get("plan_changes", 0) == metric("jbrl_plan_changes")
    assert summary["counters"].get("fallbacks", 0) == metric("jbrl_fallbacks")
    _print_summary(summary, tmp_path)
    out = capsys.readouterr().out
    assert f"{arrived:.0f} requests, {completed:.0f} completed" in out
    assert f"this run: {n} decisions" in out and "since the first start" not in out


def test_resumed_run_labels_this_run_and_cumulative_counts(
    scen: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = constant_trace(scen, math.inf, scale=0.5)
    ctl = make_controller(scen, trace, tmp_path, duration=60.0)
    try:
        first = ctl.run()
    finally:
        ctl.close()
    n1 = len(decisions(tmp_path))
    saved = read_state(tmp_path / "state.json")
    assert saved is not None and saved.counters["decisions"] == n1
    ctl = make_controller(scen, trace, tmp_path, duration=60.0, resume=saved)
    try:
        second = ctl.run()
    finally:
        ctl.close()
    n2 = len(decisions(tmp_path)) - n1  # the log appends: this run's lines
    assert first["counters"]["decisions"] == n1
    assert second["counters"]["decisions"] == n2
    assert second["counters_cumulative"]["decisions"] == n1 + n2 and second["resumed"]
    again = read_state(tmp_path / "state.json")
    assert again is not None and again.counters["decisions"] == n1 + n2
    _print_summary(second, tmp_path)
    out = capsys.readouterr().out
    assert re.search(rf"this run: {n2} decisions", out)
    assert re.search(rf"since the first start: {n1 + n2} decisions", out)
