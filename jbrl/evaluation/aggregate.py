"""The figures of an evaluation: one :class:`RunRecord` per run, one :class:`Row` per policy and
trace (and per policy over all traces), and the :class:`Evaluation` that holds them.

Rows aggregate the seeds of one policy on one trace (dollars and reconfigurations are means per
run; attainment is pooled; ``worst`` is the lowest attainment of a single run); the summary row of
a policy aggregates all its traces (dollars and reconfigurations summed over traces, per seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jbrl.jsonable import finite_or_none
from jbrl.scenario.traces import Trace

#: the per-interval series of a run (:attr:`RunRecord.series`), in this order
SERIES_KEYS = (
    "t",
    "load",
    "peak_load",
    "capacity",
    "dollars",
    "slo_attainment",
    "p99_ms",
    "accuracy",
    "reconfigurations",
    "decision_ms",
    "loading_s",  # the longest model load begun at the interval's start (s), 0 if none
)


TIMINGS = ("decision_mean_ms", "decision_max_ms")
"""The fields of a :class:`Row` that are wall-clock measurements."""


@dataclass
class RunRecord:
    """One policy on one trace with one seed."""

    policy: str
    trace: str
    seed: int
    error: str | None = None
    totals: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)
    p99_ms: float = math.nan
    accuracy: float = math.nan
    plan_changes: int = 0
    decision_ms: list[float] = field(default_factory=list)
    latency_sample: np.ndarray | None = None  # per-request latencies (DES), subsampled
    latency_exact: bool = False
    shield: dict[str, Any] | None = None
    """The SLO shield's counts (:meth:`jbrl.planning.shield.ShieldStats.summary`); None when
    the policy ran without it."""

    def to_dict(self, series: bool = True, timings: bool = True) -> dict[str, Any]:
        """The run as JSON; ``timings=False`` leaves out the decision times (wall-clock
        measurements, not figures of the run)."""
        out: dict[str, Any] = {
            "policy": self.policy,
            "trace": self.trace,
            "seed": self.seed,
            "error": self.error,
            "totals": self.totals,
            "p99_ms": finite_or_none(self.p99_ms),
            "p99_exact": self.latency_exact,
            "accuracy": finite_or_none(self.accuracy),
            "plan_changes": self.plan_changes,
            "shield": None
            if self.shield is None
            else {k: v for k, v in self.shield.items() if timings or not k.endswith("_ms")},
            "decision_ms": {
                "mean": finite_or_none(float(np.mean(self.decision_ms)))
                if self.decision_ms
                else None,
                "max": finite_or_none(float(np.max(self.decision_ms)))
                if self.decision_ms
                else None,
                "count": len(self.decision_ms),
            },
        }
        if series:
            out["series"] = {
                k: [finite_or_none(x) for x in v]
                for k, v in self.series.items()
                if timings or k != "decision_ms"
            }
        if not timings:
            out.pop("decision_ms")
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """The run back from :meth:`to_dict` (with its series): every figure the aggregation
        reads; the latency sample (for plots only) is not kept."""
        series = {
            k: [math.nan if x is None else float(x) for x in v]
            for k, v in (d.get("series") or {}).items()
        }
        return cls(
            policy=str(d["policy"]),
            trace=str(d["trace"]),
            seed=int(d["seed"]),
            error=d["error"],
            totals=dict(d["totals"]),
            series=series,
            p99_ms=_or_nan(d["p99_ms"]),
            accuracy=_or_nan(d["accuracy"]),
            plan_changes=int(d["plan_changes"]),
            decision_ms=list(series.get("decision_ms", [])),
            latency_exact=bool(d["p99_exact"]),
            shield=d["shield"],
        )


@dataclass
class Row:
    """Aggregate of one policy on one trace (or on all traces: ``trace == "all"``)."""

    policy: str
    trace: str
    runs: int
    errors: int
    dollars: float
    dollars_per_1k: float
    slo_attainment: float
    worst_attainment: float
    p99_ms: float
    accuracy: float
    reconfigurations: float
    plan_changes: float
    decision_mean_ms: float
    decision_max_ms: float
    error: str | None = None
    shield_interventions: float = math.nan
    """Plans the SLO shield replaced, per run (nan: the policy ran without the shield)."""

    def to_dict(self, timings: bool = True) -> dict[str, Any]:
        return {
            k: (finite_or_none(v) if isinstance(v, float) else v)
            for k, v in self.__dict__.items()
            if timings or k not in TIMINGS
        }


@dataclass
class Evaluation:
    """Every run, the rows per (policy, trace), and one summary row per policy."""

    scenario: str
    simulator: str
    seeds: list[int]
    interval_s: float
    load_time_s: float | None
    policies: list[str]
    traces: dict[str, Trace]
    runs: list[RunRecord]
    rows: list[Row] = field(default_factory=list)
    summary: list[Row] = field(default_factory=list)
    latency_bound_ms: float = math.nan
    attainment_target: float = math.nan
    wall_s: float = 0.0

    def to_dict(self, series: bool = True, timings: bool = True) -> dict[str, Any]:
        """Every figure as JSON; ``timings=False`` leaves out the wall-clock measurements
        (decision times, ``wall_s``), which differ from one execution to the next: what is left
        is the same wherever and in whatever order the runs executed."""
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "simulator": self.simulator,
            "seeds": self.seeds,
            "interval_s": self.interval_s,
            "load_time_s": self.load_time_s,
            "latency_bound_ms": finite_or_none(self.latency_bound_ms),
            "attainment_target": finite_or_none(self.attainment_target),
            "policies": self.policies,
            "traces": {
                n: {"file": t.file, "duration_s": t.duration} for n, t in self.traces.items()
            },
            "rows": [r.to_dict(timings) for r in self.rows],
            "summary": [r.to_dict(timings) for r in self.summary],
            "runs": [r.to_dict(series, timings) for r in self.runs],
        }
        if timings:
            out["wall_s"] = self.wall_s
        return out

    def row(self, policy: str, trace: str = "all") -> Row | None:
        """The row of ``policy`` on ``trace`` (its summary row for ``"all"``), if any."""
        for r in self.summary if trace == "all" else self.rows:
            if r.policy == policy and r.trace == trace:
                return r
        return None

    def ok_runs(self, policy: str, trace: str) -> list[RunRecord]:
        """The runs of ``policy`` on ``trace`` that finished without an error, in seed order."""
        return [r for r in self.runs if r.policy == policy and r.trace == trace and not r.error]

    def first_run(self, policy: str, trace: str) -> RunRecord | None:
        """The first run of ``policy`` on ``trace`` without an error (the one plots draw)."""
        return next(iter(self.ok_runs(policy, trace)), None)


def aggregate(ev: Evaluation) -> None:
    """Fill ``ev.rows`` and ``ev.summary`` from ``ev.runs``."""
    ev.rows, ev.summary = [], []
    for p in ev.policies:
        mine = [r for r in ev.runs if r.policy == p]
        for t in ev.traces:
            runs = [r for r in mine if r.trace == t]
            if runs:
                ev.rows.append(_aggregate_runs(p, t, runs, 1))
        if mine:
            ev.summary.append(_aggregate_runs(p, "all", mine, len(ev.traces)))


def _aggregate_runs(policy: str, trace: str, runs: list[RunRecord], per_trace: int) -> Row:
    """The row of ``runs`` (of one policy; ``per_trace`` traces each seed ran on)."""
    ok = [r for r in runs if r.error is None]
    err = next((r.error for r in runs if r.error), None)
    if not ok:
        nan = math.nan
        return Row(policy, trace, len(runs), len(runs), nan, nan, nan, nan, nan, nan, nan, nan,
                   nan, nan, err)  # fmt: skip
    n_seeds = max(1, len(ok) / max(1, per_trace))
    dollars = sum(r.totals["dollars"] for r in ok)
    arrivals = sum(r.totals["arrivals"] for r in ok)
    # (None: the scenario has no latency bound, so no attainment either)
    within = sum(_or_nan(r.totals["within_slo"]) for r in ok)
    done = sum(r.totals["completed"] + r.totals["dropped_total"] for r in ok)
    atts = [r.totals["slo_attainment"] for r in ok if r.totals["slo_attainment"] is not None]
    p99s = [r.p99_ms for r in ok if math.isfinite(r.p99_ms)]
    accw = [(r.accuracy, r.totals["arrivals"]) for r in ok if math.isfinite(r.accuracy)]
    dec = [d for r in ok for d in r.decision_ms]
    return Row(
        policy=policy,
        trace=trace,
        runs=len(runs),
        errors=len(runs) - len(ok),
        dollars=dollars / n_seeds,
        dollars_per_1k=dollars / arrivals * 1000.0 if arrivals > 0 else math.nan,
        slo_attainment=within / done if done > 0 else math.nan,
        worst_attainment=min(atts) if atts else math.nan,
        p99_ms=(max(p99s) if trace == "all" else float(np.mean(p99s))) if p99s else math.nan,
        accuracy=(
            sum(a * w for a, w in accw) / sum(w for _, w in accw)
            if accw and sum(w for _, w in accw) > 0
            else math.nan
        ),
        reconfigurations=sum(r.totals["reconfigurations"] for r in ok) / n_seeds,
        plan_changes=sum(r.plan_changes for r in ok) / n_seeds,
        decision_mean_ms=float(np.mean(dec)) if dec else math.nan,
        decision_max_ms=float(np.max(dec)) if dec else math.nan,
        error=err,
        shield_interventions=(
            sum(r.shield["interventions"] for r in ok if r.shield is not None) / n_seeds
            if any(r.shield is not None for r in ok)
            else math.nan
        ),
    )


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)
