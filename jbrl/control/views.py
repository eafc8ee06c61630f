"""What the controller shows of itself: a frozen snapshot, the run summary, and the decision
log's record and TensorBoard scalars.

:class:`ControllerSnapshot` is taken under the controller's lock
(:meth:`~jbrl.control.controller.Controller.snapshot`), so the HTTP API and the summary read one
consistent state without touching the controller's internals. Run totals come from
:class:`jbrl.sim.rollout.RunAccumulator` (:class:`~jbrl.sim.rollout.Totals`), the one way jbrl
totals intervals; $/hour from ``dollars_per_hour`` of an interval or of the totals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jbrl.control.backends.base import BackendReport
from jbrl.control.decision import Decision
from jbrl.jsonable import jsonable
from jbrl.planning.plan import Plan
from jbrl.sim.base import IntervalMetrics
from jbrl.sim.rollout import Totals


@dataclass(frozen=True)
class ControllerSnapshot:
    """The controller's state at one moment (copies: later decisions do not change it).

    ``load``: the source rates the running plan is checked against; ``counters``: decisions,
    fallbacks, overrides, ... of this run (since this process started); ``counters_cumulative``:
    the same including the runs before a ``--state`` resume; ``fallback_reasons``: this run's
    fallbacks by reason label; ``plan_cost``: the cost model of the running plan at ``load``
    (compute, communication, total $/hour; accuracy); ``totals``: what the backend reported
    over the run; ``decision_ms``: the wall time of the latest decisions (up to 1000);
    ``recent_decisions``: the latest decisions, oldest first; ``request_counts``: the backend's
    cumulative request counts as of its last report (they agree with ``totals``; empty before
    the first report).
    """

    scenario: str
    policy: str
    backend: str
    plan: Plan | None
    plan_workers: frozenset[str]
    last_decision: Decision | None
    last_report: BackendReport | None
    load: dict[str, float]
    counters: dict[str, int]
    fallback_reasons: dict[str, int]
    plan_cost: dict[str, float | None]
    totals: Totals
    decision_ms: tuple[float, ...]
    stopping: bool
    counters_cumulative: dict[str, int] = field(default_factory=dict)
    recent_decisions: tuple[Decision, ...] = ()
    request_counts: dict[str, Any] = field(default_factory=dict)

    @property
    def last_metrics(self) -> IntervalMetrics | None:
        """The metrics of the last interval the backend reported (None before the first)."""
        return self.last_report.metrics if self.last_report else None

    @property
    def run_slo_attainment(self) -> float:
        """SLO attainment over the whole run (NaN when nothing finished)."""
        return self.totals.slo_attainment


def interval_dollars_per_hour(m: IntervalMetrics | None) -> float | None:
    """$/hour spent in interval ``m`` (None for no interval or an empty one)."""
    return m.dollars_per_hour if m is not None and m.duration > 0 else None


def summary_of(snap: ControllerSnapshot, backend_counts: dict[str, Any]) -> dict[str, Any]:
    """Run totals: requests, SLO attainment, dollars, decisions, fallbacks, timings (JSON).

    Everything counts this run (since this process started) except ``counters_cumulative``,
    which adds the counters of the runs before a ``--state`` resume."""
    t = snap.totals
    dms = sorted(snap.decision_ms)
    out = {
        "scenario": snap.scenario,
        "policy": snap.policy,
        "backend": snap.backend,
        "duration_s": t.duration,
        "arrivals": t.arrivals,
        "completed": t.completed,
        "dropped": t.dropped_total,
        "slo_attainment": t.slo_attainment,
        "dollars": t.dollars,
        "dollars_per_hour": t.dollars_per_hour if t.duration > 0 else None,
        "latency_ms": dict(t.latency_ms),
        "in_flight": backend_counts.get("in_flight"),
        "counters": dict(snap.counters),
        "counters_cumulative": dict(snap.counters_cumulative),
        "resumed": snap.counters_cumulative != snap.counters,
        "fallback_reasons": dict(snap.fallback_reasons),
        "decision_ms": {
            "p50": _pct(dms, 0.5),
            "p95": _pct(dms, 0.95),
            "max": dms[-1] if dms else None,
        },
        "plan": snap.plan.to_dict() if snap.plan else None,
        "backend_counts": backend_counts,
    }
    return jsonable(out)


def decision_record(
    d: Decision,
    policy: str,
    plan_cost: dict[str, float | None],
    report: BackendReport | None,
) -> dict[str, Any]:
    """One line of ``decisions.jsonl``: the decision, the cost of its plan and, after an
    interval, the metrics it was based on."""
    rec: dict[str, Any] = {
        "seq": d.seq,
        "time_s": d.time_s,
        "wall": datetime.now(UTC).isoformat(),
        "trigger": d.trigger,
        "source": d.source,
        "policy": policy,
        "decision_ms": d.decision_ms,
        "policy_ms": d.policy_ms,
        "metrics_ms": d.metrics_ms,
        "apply_s": d.apply_s,
        "fallback_reason": d.fallback_reason,
        "shield": d.shield,
        "problems": d.problems,
        "how": d.how,
        "load": d.load,
        "down": d.down,
        "changed": d.changed,
        "diff": d.diff.to_dict(),
        "plan_cost": dict(plan_cost),
        "plan": d.plan.to_dict(),
    }
    if report is not None:
        m = report.metrics
        rec["metrics"] = {
            "t_start": m.t_start,
            "duration": m.duration,
            "rates": m.rates,
            "arrivals": m.arrivals,
            "completed": m.completed,
            "dropped": m.dropped,
            "in_flight": m.in_flight,
            "slo_attainment": m.slo_attainment,
            "latency_ms": m.latency_ms,
            "dollars_per_hour": interval_dollars_per_hour(m),
            "utilization": m.utilization,
            "worker_queue": report.worker_queue,
        }
        rec["counts"] = report.counts
    return rec


def decision_scalars(
    d: Decision,
    counters: dict[str, int],
    plan_cost: dict[str, float | None],
    workers_in_plan: int,
    report: BackendReport | None,
) -> dict[str, float]:
    """The TensorBoard scalars of one decision (namespaced ``control/``, ``load/``,
    ``backend/``)."""
    out: dict[str, float] = {
        "control/decision_ms": d.decision_ms,
        "control/fallbacks_total": float(counters.get("fallbacks", 0)),
        "control/shield_interventions_total": float(counters.get("shield_interventions", 0)),
        "control/plan_changes_total": float(counters.get("plan_changes", 0)),
        "control/plan_dollars_per_hour": float(plan_cost.get("total") or 0.0),
        "control/workers_in_plan": float(workers_in_plan),
        "control/apply_s": d.apply_s,
    }
    for src, r in d.load.items():
        out[f"load/{src}"] = r
    if report is not None:
        m = report.metrics
        dph = interval_dollars_per_hour(m)
        if dph is not None:
            out["control/dollars_per_hour"] = dph
        out["control/slo_attainment"] = m.slo_attainment
        for k in ("p50", "p95", "p99"):
            out[f"control/latency_{k}_ms"] = m.latency_ms.get(k, math.nan)
        out["backend/in_flight"] = m.in_flight
        out["backend/dropped"] = m.dropped_total
        out["backend/down_workers"] = float(len(report.down))
    return out


def _pct(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, math.ceil(q * len(sorted_vals)) - 1))
    return sorted_vals[i]
