"""Aggregation of runs into rows: per trace (means over seeds, pooled attainment) and per policy
over all traces (sums over traces, per seed); failed runs; the evaluation's run lookups."""

from __future__ import annotations

import json
import math

from jbrl.evaluation.aggregate import Evaluation, RunRecord, aggregate
from jbrl.scenario.traces import generate_trace


def record(policy: str, trace: str, seed: int, **figures: float) -> RunRecord:
    """A finished run with the totals the rows read (defaults: 100 requests, all within SLO)."""
    totals = {"dollars": 1.0, "arrivals": 100.0, "within_slo": 100.0, "completed": 100.0,
              "dropped_total": 0.0, "slo_attainment": 1.0, "reconfigurations": 0}  # fmt: skip
    totals.update({k: v for k, v in figures.items() if k in totals})
    return RunRecord(
        policy,
        trace,
        seed,
        totals=totals,
        p99_ms=figures.get("p99_ms", 100.0),
        accuracy=figures.get("accuracy", 70.0),
        plan_changes=int(figures.get("plan_changes", 0)),
        decision_ms=[figures.get("decision_ms", 1.0)],
    )


def evaluation(runs: list[RunRecord], seeds: int = 2) -> Evaluation:
    trace = generate_trace("constant", 120)
    ev = Evaluation("s", "fluid", list(range(seeds)), 60.0, None, ["a", "b"],
                    {"t1": trace, "t2": trace}, runs)  # fmt: skip
    aggregate(ev)
    return ev


def test_rows_per_trace_and_summary():
    runs = [
        record("a", "t1", 0, dollars=1.0, within_slo=90.0, slo_attainment=0.9, p99_ms=100.0),
        record("a", "t1", 1, dollars=3.0, within_slo=100.0, slo_attainment=1.0, p99_ms=300.0),
        record("a", "t2", 0, dollars=2.0, reconfigurations=4, plan_changes=2, p99_ms=50.0),
        record("a", "t2", 1, dollars=2.0, arrivals=300.0, within_slo=300.0, completed=300.0),
    ]
    ev = evaluation(runs)
    t1 = ev.row("a", "t1")
    assert t1 is not None and (t1.runs, t1.errors) == (2, 0)
    assert t1.dollars == 2.0  # mean per run over the seeds
    assert t1.slo_attainment == 190.0 / 200.0  # pooled requests, not the mean of attainments
    assert t1.worst_attainment == 0.9 and t1.p99_ms == 200.0  # per trace: mean of the p99s
    assert math.isclose(t1.dollars_per_1k, 4.0 / 200.0 * 1000.0)
    all_ = ev.row("a")
    assert all_ is not None and all_.trace == "all" and all_.runs == 4
    assert all_.dollars == 8.0 / 2  # summed over traces, per seed
    assert all_.reconfigurations == 2.0 and all_.plan_changes == 1.0
    assert all_.p99_ms == 300.0  # over all traces: the worst
    assert ev.row("b") is None and ev.row("a", "t3") is None
    assert [r.trace for r in ev.rows] == ["t1", "t2"] and len(ev.summary) == 1


def test_accuracy_is_weighted_by_arrivals():
    runs = [
        record("a", "t1", 0, accuracy=70.0, arrivals=100.0),
        record("a", "t1", 1, accuracy=80.0, arrivals=300.0),
    ]
    row = evaluation(runs).row("a", "t1")
    assert row is not None and math.isclose(row.accuracy, (70.0 * 100 + 80.0 * 300) / 400)


def test_failed_runs():
    runs = [
        record("a", "t1", 0),
        RunRecord("a", "t1", 1, error="RuntimeError: boom"),
        RunRecord("b", "t1", 0, error="RuntimeError: bang"),
    ]
    ev = evaluation(runs)
    a = ev.row("a", "t1")
    assert a is not None and (a.runs, a.errors, a.error) == (2, 1, "RuntimeError: boom")
    assert a.dollars == 1.0  # figures of the runs that finished
    b = ev.row("b", "t1")
    assert b is not None and b.errors == b.runs == 1 and math.isnan(b.dollars)
    # JSON has no NaN: non-finite figures are null
    data = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert data["rows"][-1]["dollars"] is None
    assert [r.seed for r in ev.ok_runs("a", "t1")] == [0]
    assert ev.first_run("a", "t1") is runs[0]
    assert ev.first_run("b", "t1") is None and ev.ok_runs("a", "t2") == []


def test_run_record_to_dict():
    rec = record("a", "t1", 0, decision_ms=2.0)
    rec.series = {"t": [0.0, 60.0], "p99_ms": [math.nan, 5.0]}
    d = rec.to_dict()
    assert d["decision_ms"] == {"mean": 2.0, "max": 2.0, "count": 1}
    assert d["series"]["p99_ms"] == [None, 5.0]
    assert "series" not in rec.to_dict(series=False)
    assert RunRecord("a", "t", 0).to_dict()["decision_ms"] == {"mean": None, "max": None,
                                                               "count": 0}  # fmt: skip


def test_run_record_json_round_trip_aggregates_the_same():
    """A run saved as JSON (with its series) and read back gives the same rows: what a resumed
    benchmark (experiments/evaluate_policies.py's cache) relies on."""
    runs = []
    for seed, (dec, att) in enumerate([([1.5, 4.0], 0.98), ([2.5, 0.5], 0.995)]):
        r = record("a", "t1", seed, slo_attainment=att, within_slo=100 * att, dollars=seed + 1)
        r.series = {"t": [0.0, 60.0], "decision_ms": dec, "p99_ms": [math.nan, 5.0]}
        r.decision_ms = dec
        r.shield = {"interventions": seed, "scale_ups": seed}
        runs.append(r)
    back = [RunRecord.from_dict(json.loads(json.dumps(r.to_dict()))) for r in runs]
    assert back[0].series["p99_ms"][0] != back[0].series["p99_ms"][0]  # None read as nan
    assert [b.decision_ms for b in back] == [[1.5, 4.0], [2.5, 0.5]]
    a, b = evaluation(runs), evaluation(back)
    assert [r.to_dict() for r in a.rows] == [r.to_dict() for r in b.rows]
    assert b.row("a", "t1").shield_interventions == 0.5 and b.row("a").decision_max_ms == 4.0
