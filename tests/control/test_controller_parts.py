"""The controller's parts without a running backend: the policy call and its typed failures,
override outcomes and their HTTP status, the accounting through the one way of totalling
(:class:`jbrl.sim.rollout.RunAccumulator`), and the frozen snapshot the HTTP API reads."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from test_control import control_scenario

from jbrl.agents.policy import ControlState, Policy
from jbrl.control import (
    ApplyResult,
    Backend,
    BackendReport,
    Clock,
    Controller,
    ControllerConfig,
    OverrideOutcome,
    OverrideResult,
    PlanDiff,
    PolicyFailure,
)
from jbrl.control.api import override_response, render_metrics
from jbrl.control.backends.base import merge_intervals
from jbrl.control.decision import PolicyCaller, override_request
from jbrl.planning.plan import Plan, plan_from_dict
from jbrl.scenario import Scenario
from jbrl.sim.base import IntervalMetrics, empty_drops
from jbrl.sim.rollout import totals_of

GOOD = {
    "model_assignment": {"detect": "large"},
    "worker_assignment": {"detect": ["e1", "e2"], "track": ["c2"]},
}


def _state(scen: Scenario, plan: Plan | None = None) -> ControlState:
    return ControlState(scen, 0.0, 20.0, current_plan=plan, rate_history=[{"cam": 5.0}])


class _Answers(Policy):
    """Returns (or raises) the next of ``answers``; an Event blocks until it is set."""

    name = "answers"

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)

    def decide(self, state: ControlState) -> Plan:
        a = self.answers.pop(0)
        if isinstance(a, threading.Event):
            a.wait(30)
            return plan_from_dict(GOOD)
        if isinstance(a, BaseException):
            raise a
        return a  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- policy failures


def test_policy_failures_are_typed_where_they_happen() -> None:
    scen = control_scenario()
    good, running = plan_from_dict(GOOD), plan_from_dict(GOOD)
    release = threading.Event()
    policy = _Answers(
        good,
        None,
        RuntimeError("the solver timed out, busy"),  # an error whatever its message says
        "not a plan",
        release,  # times out ...
        good,  # ... and is still busy at the next call
    )
    caller = PolicyCaller(policy, timeout_s=2.0)  # generous: only the blocked call times out
    try:
        ok = caller.ask(_state(scen), None)
        assert ok.plan is good and ok.failure is None and ok.message is None
        keep = caller.ask(_state(scen, running), running)
        assert keep.plan is running and keep.failure is None  # None keeps the running plan
        err = caller.ask(_state(scen), None)
        assert err.plan is None and err.failure is PolicyFailure.ERROR
        assert err.message == "the policy raised RuntimeError: the solver timed out, busy"
        bad = caller.ask(_state(scen), None)
        assert bad.failure is PolicyFailure.NOT_A_PLAN and "returned str" in (bad.message or "")
        slow = caller.ask(_state(scen), None)
        assert slow.failure is PolicyFailure.TIMEOUT and slow.ms is None
        busy = caller.ask(_state(scen), None)
        assert busy.failure is PolicyFailure.BUSY and busy.plan is None
        assert policy.answers == [good]  # the busy call did not reach the policy
    finally:
        release.set()
        caller.close()
    # the keys fallbacks are counted under (summary, /metrics) stay what they were
    assert PolicyFailure.TIMEOUT.reason_label == "policy_timeout"
    assert PolicyFailure.BUSY.reason_label == "policy_timeout"
    assert PolicyFailure.ERROR.reason_label == "policy_error"
    assert PolicyFailure.NOT_A_PLAN.reason_label == "policy_error"


# --------------------------------------------------------------------------- overrides


def test_override_request_and_outcomes() -> None:
    assert override_request({"plan": GOOD, "hold_intervals": 3}) == (GOOD, 3)
    assert override_request(GOOD, 2) == (GOOD, 2)
    for hold in (True, -1, 10_001, 1.5, "2"):
        assert override_request({"plan": GOOD, "hold_intervals": hold})[1] is None
    assert override_request({"plan": GOOD, "hold_intervals": 10_000})[1] == 10_000

    bad = OverrideResult(OverrideOutcome.BAD_HOLD)
    assert override_response(bad) == (
        400,
        {"error": "hold_intervals must be an integer in [0, 10000]"},
    )
    malformed = OverrideResult(OverrideOutcome.MALFORMED, ["x"])
    assert override_response(malformed) == (400, {"error": "malformed plan", "reasons": ["x"]})
    rejected = OverrideResult(OverrideOutcome.REJECTED, ["y"])
    assert override_response(rejected) == (400, {"error": "plan rejected", "reasons": ["y"]})
    applied = OverrideResult(
        OverrideOutcome.APPLIED, seq=4, hold_intervals=1, diff=PlanDiff(), apply_s=0.5
    )
    code, body = override_response(applied)
    assert code == 200 and applied.applied and not rejected.applied
    assert body == {
        "applied": True,
        "seq": 4,
        "hold_intervals": 1,
        "diff": PlanDiff().to_dict(),
        "apply_s": 0.5,
    }


# --------------------------------------------------------------------------- accounting


def _interval(t: float, dur: float, done: float, within: float, lat: float) -> IntervalMetrics:
    drops = empty_drops()
    drops["timeout"] = 2.0
    return IntervalMetrics(
        t_start=t,
        duration=dur,
        arrivals=done + 3.0,
        completed=done,
        within_slo=within,
        dropped=drops,
        in_flight_start=1.0,
        in_flight=2.0,
        latency_ms={"p50": lat, "p95": 2 * lat, "p99": 3 * lat, "mean": 1.1 * lat},
        utilization={"e1": 0.5, "e2": 0.25},
        wait_ms={},
        operator_backlog={},
        operator_utilization={},
        compute_dollars=0.01 * dur,
        communication_dollars=0.001 * dur,
        rates={"cam": 5.0},
    )


class _Scripted(Backend):
    """Hands out prepared reports; nothing runs."""

    kind = "scripted"

    def __init__(self, scenario: Scenario, reports: list[IntervalMetrics]) -> None:
        super().__init__(scenario, Clock(1.0))
        self.reports = list(reports)

    def start(self, plan: Plan, design_rates: Mapping[str, float] | None = None) -> None:
        return None

    def metrics(self) -> BackendReport:
        return BackendReport(self.reports.pop(0), counts={"arrived": 0})

    def down_workers(self) -> frozenset[str]:
        return frozenset()

    def apply(
        self, plan: Plan, diff: PlanDiff, design_rates: Mapping[str, float] | None = None
    ) -> ApplyResult:
        return ApplyResult()

    def counts(self) -> dict[str, Any]:
        return {"arrived": 0}

    def close(self) -> None:
        return None


class _Fixed(Policy):
    name = "fixed"

    def decide(self, state: ControlState) -> Plan:
        return plan_from_dict(GOOD)


def test_summary_totals_are_the_rollout_totals() -> None:
    """The controller totals the backend's reports with RunAccumulator: its summary and
    /metrics agree with totals_of over the same intervals (and with merge_intervals)."""
    scen = control_scenario()
    reports = [
        _interval(0.0, 20.0, 90.0, 88.0, 100.0),
        _interval(20.0, 20.0, 0.0, 0.0, math.nan),  # nothing completed: no latency weight
        _interval(40.0, 15.0, 70.0, 61.0, 250.0),
    ]
    cfg = ControllerConfig(interval_s=20.0, headroom=0.3, tensorboard=False)
    ctl = Controller(scen, _Fixed(), _Scripted(scen, reports), cfg, initial_rates={"cam": 5.0})
    try:
        ctl.start()
        empty = ctl.summary()
        assert empty["duration_s"] == 0.0 and empty["dollars_per_hour"] is None
        assert empty["slo_attainment"] is None and empty["latency_ms"]["p50"] is None
        before = ctl.snapshot()
        for _ in reports:
            ctl.step("interval")
        s = ctl.summary()
        snap = ctl.snapshot()
        text = render_metrics(ctl)
    finally:
        ctl.close()
    t = totals_of(reports)
    assert s["duration_s"] == t.duration and s["arrivals"] == t.arrivals
    assert s["completed"] == t.completed and s["dropped"] == t.dropped_total == 6.0
    assert s["slo_attainment"] == t.slo_attainment
    assert s["dollars"] == t.dollars and s["dollars_per_hour"] == t.dollars_per_hour
    assert s["latency_ms"] == t.latency_ms
    assert s["latency_ms"]["p50"] == pytest.approx((90 * 100 + 70 * 250) / 160)
    merged = merge_intervals(reports)
    assert merged.latency_ms == t.latency_ms and merged.dropped == t.dropped
    assert (merged.arrivals, merged.completed, merged.dollars) == (
        t.arrivals,
        t.completed,
        t.dollars,
    )
    assert snap.totals == t and snap.run_slo_attainment == t.slo_attainment
    assert f"jbrl_run_slo_attainment {t.slo_attainment!r}" in text
    last_dph = reports[-1].dollars_per_hour
    assert f"jbrl_dollars_per_hour {last_dph!r}" in text
    # the snapshot is a frozen copy: later decisions do not change it
    assert before.counters == {"decisions": 1} and snap.counters["decisions"] == 4
    assert before.totals.duration == 0.0 and before.plan_workers == frozenset({"e1", "e2", "c2"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.stopping = True  # type: ignore[misc]
