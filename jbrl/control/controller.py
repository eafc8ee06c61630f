"""The online controller (ARCHITECTURE.md, "Controller").

Every control interval (trace seconds; ``interval_s / speedup`` wall seconds)::

    report = backend.metrics()                      # rates, utilization, queues, SLO, dollars
    state  = ControlState(..., last_metrics=report.metrics)
    plan   = policy.decide(state)                   # in a thread, with a timeout
    plan   = shield.check(plan, load)               # SLO shield: scale-up if predicted to miss
    problems = check_plan(plan, load, headroom)     # accuracy, capacity, one op/worker, health
    if problems or the policy raised/timed out:
        plan = FallbackPlanner.plan(load, down)     # exact MILP on the live workers
    backend.apply(plan, diff_plans(current, plan))  # only the difference
    log the decision (JSON lines + TensorBoard), write the state file

Between intervals the controller polls the backend's worker health several times per interval;
when a worker of the running plan goes down it decides at once (trigger ``crash``), so a crashed
worker is replaced within one interval. An operator's override (``POST /plan``) goes through the
same checks and is held for ``hold_intervals`` decisions (:meth:`Controller.override` returns an
:class:`~jbrl.control.decision.OverrideResult`; the HTTP layer maps its outcome to a status).
``stop`` (SIGTERM in the CLI) ends the loop after the current step; :meth:`Controller.close`
writes the final state.

The backend's reports are totalled by :class:`jbrl.sim.rollout.RunAccumulator`, the one way jbrl
totals intervals. Other threads (the HTTP API) read :meth:`Controller.snapshot`, a frozen view.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jbrl.agents.policy import ControlState, Policy
from jbrl.control.backends.base import Backend, BackendReport, PlanDiff, diff_plans
from jbrl.control.config import ControllerConfig
from jbrl.control.decision import (
    Decision,
    OverrideOutcome,
    OverrideResult,
    PolicyAnswer,
    PolicyCaller,
    PolicyFailure,
    Vetted,
    override_request,
)
from jbrl.control.log import DecisionLog
from jbrl.control.safety import (
    FallbackPlanner,
    Problem,
    check_plan,
    controller_shield,
    predicted_attainment,
    shielded,
)
from jbrl.control.state import ControllerState, StateStore
from jbrl.control.views import (
    ControllerSnapshot,
    decision_record,
    decision_scalars,
    summary_of,
)
from jbrl.errors import InputError, Param
from jbrl.jsonable import jsonable
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.coverage import scaled
from jbrl.planning.plan import Plan, plan_from_dict
from jbrl.scenario.model import Scenario
from jbrl.sim.base import IntervalMetrics
from jbrl.sim.rollout import RunAccumulator

#: decisions a snapshot carries (the status page shows them)
RECENT_DECISIONS = 20


class Controller:
    """Runs ``policy`` against ``backend``. See the module docstring.

    Args:
        scenario: the scenario the backend serves.
        policy: the decision maker (any :class:`~jbrl.agents.policy.Policy`).
        backend: the serving system.
        config: loop options.
        policy_name: the policy's spec, for logs.
        initial_rates: the load to plan the first interval for (default: nominal rates).
        resume: a saved state to resume from (its plan runs first, if it still passes).

    Readers in other threads (the HTTP API) take a :meth:`snapshot`.
    """

    def __init__(
        self,
        scenario: Scenario,
        policy: Policy,
        backend: Backend,
        config: ControllerConfig | None = None,
        *,
        policy_name: str | None = None,
        initial_rates: Mapping[str, float] | None = None,
        resume: ControllerState | None = None,
    ) -> None:
        self.scenario = scenario
        self.policy = policy
        self.backend = backend
        self.config = config or ControllerConfig()
        self.policy_name: str = policy_name or str(getattr(policy, "name", type(policy).__name__))
        self.clock = backend.clock
        self.fallback = FallbackPlanner(
            scenario,
            headroom=self.config.headroom,
            accuracy=self.config.accuracy,
            time_limit=self.config.fallback_time_limit_s,
        )
        self.shield = controller_shield(scenario, self.config)
        self._state = StateStore(self.config.state_file) if self.config.state_file else None
        self.log = DecisionLog(self.config.log_dir, self.config.tensorboard)
        self.resume = resume
        self._lock = threading.RLock()  # quick state (read through snapshot())
        self._apply_lock = threading.Lock()  # one reconfiguration at a time
        self._caller = PolicyCaller(policy, self.config.policy_timeout_s)
        self.plan: Plan | None = None
        self.plan_cost: dict[str, float | None] = {}
        self.load: dict[str, float] = dict(initial_rates or scenario.nominal_rates())
        self.rate_history: deque[dict[str, float]] = deque(maxlen=self.config.history)
        self.last_report: BackendReport | None = None
        self.last_decision: Decision | None = None
        self.decisions: deque[Decision] = deque(maxlen=1000)
        self.seq = resume.seq if resume else 0
        # this run's counts; with the resumed state's they give the cumulative ones
        self.counters: Counter[str] = Counter()
        self.resumed_counters: Counter[str] = Counter(resume.counters if resume else {})
        self.fallback_reasons: Counter[str] = Counter()
        self.decision_ms: deque[float] = deque(maxlen=1000)
        self._run = RunAccumulator()  # the backend's reports, totalled
        self._override_hold = 0
        self._override_seq = 0
        self._handled_down: frozenset[str] = frozenset()
        self.started_wall = time.time()
        self.stopping = False
        self.closed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Decision:
        """Choose and deploy the first plan (the resumed one if it still passes)."""
        self.clock.start()
        t0 = time.perf_counter()
        now = self.clock.now()
        if self.resume is not None:
            answer = PolicyAnswer(self.resume.plan)
            source, trigger = "resume", "resume"
        else:
            # the expected load stands in for an observation at the first decision
            state = ControlState(
                self.scenario, now, self.config.interval_s, rate_history=[dict(self.load)]
            )
            answer = self._ask_policy(state)
            source, trigger = "policy", "start"
        v = self._vet(answer, source, frozenset())
        if v.plan is None:
            raise InputError(
                f"no plan to start with: {v.reason}; the policy's plan was rejected "
                f"({'; '.join(v.problems) or answer.message}) and the MILP fallback found none",
                field=Param.POLICY,
                value=self.policy_name,
            )
        t1 = time.perf_counter()
        self.backend.start(v.plan, self._design_rates())
        d = Decision(
            seq=self._next_seq(),
            time_s=now,
            trigger=trigger,
            source=v.source,
            plan=v.plan,
            diff=diff_plans(self.scenario, None, v.plan),
            decision_ms=(t1 - t0) * 1000.0,
            policy_ms=answer.ms,
            apply_s=time.perf_counter() - t1,
            fallback_reason=v.reason,
            problems=v.problems,
            how=v.how,
            load=dict(self.load),
            shield=v.shield,
        )
        self._commit(d, None)
        self.log.write_run(self.run_info())
        return d

    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Start, then decide every interval until ``stop`` is set or the duration is over."""
        stop = stop or threading.Event()
        if self.plan is None:
            self.start()
        interval = self.config.interval_s
        end = None if self.config.duration_s is None else self.clock.offset + self.config.duration_s
        next_t = self.clock.now() + interval
        while not stop.is_set():
            if not self._wait_interval(next_t, stop):
                break
            self.step("interval")
            if end is not None and self.clock.now() >= end - 1e-9:
                break
            now = self.clock.now()
            next_t += interval
            if next_t <= now:  # fell behind (a slow decision): keep the cadence, skip ticks
                next_t += math.ceil((now - next_t) / interval) * interval
        self.stopping = True
        return self.summary()

    def _wait_interval(self, next_t: float, stop: threading.Event) -> bool:
        """Sleep until ``next_t``, polling the backend; decide at once when a worker of the plan
        crashes (``crash``) or the load since the last report exceeds what the plan carries
        (``surge``, at most once per interval)."""
        poll = self.config.interval_s / self.config.health_checks
        surged = False
        while True:
            now = self.clock.now()
            if now >= next_t:
                return True
            if not self.clock.wait_until(min(next_t, now + poll), stop):
                return False
            down = self.backend.down_workers()
            in_plan = down & self._plan_workers()
            if in_plan and not in_plan <= self._handled_down:
                self.step("crash")
            self._handled_down = down
            if not surged and self.plan is not None and self.clock.now() < next_t - poll / 2:
                recent = self.backend.recent_rates()
                if recent is not None and self._overloaded(recent):
                    surged = True
                    self.step("surge", recent_rates=recent)

    def _overloaded(self, rates: Mapping[str, float]) -> bool:
        """The running plan cannot carry ``rates`` (no headroom) and they exceed the load it
        was checked for."""
        if all(rates.get(k, 0.0) <= v * (1 + 1e-9) for k, v in self.load.items()):
            return False
        assert self.plan is not None
        problems = check_plan(self.scenario, self.plan, rates, 0.0, self.config.accuracy)
        return any(p.kind == "capacity_short" for p in problems)

    def close(self) -> None:
        """Write the final state, close the logs and the backend (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.stopping = True
        try:
            self._save_state(final=True, time_s=self.backend.trace_time())
        finally:
            if self._state is not None:
                self._state.close()
        self._caller.close()
        try:
            self.backend.close()
        finally:
            self.log.close()

    # ------------------------------------------------------------------ one decision

    def step(
        self, trigger: str = "interval", recent_rates: Mapping[str, float] | None = None
    ) -> Decision:
        """Read metrics (on ``interval``), decide, check, fall back if needed, apply the diff.

        ``recent_rates`` (trigger ``surge``): the load seen since the last report; it becomes
        the load the plan is checked against and is shown to the policy as the latest
        observation (without entering the interval history)."""
        t_read = time.perf_counter()
        report, history, down = self._observe(trigger, recent_rates)
        t0 = time.perf_counter()  # decision time starts once the backend has reported
        metrics_ms = (t0 - t_read) * 1000.0
        now = self.clock.now()
        override_seq = self._override_seq
        if self._override_hold > 0 and trigger == "interval":
            self._override_hold -= 1
            answer, source = PolicyAnswer(self.plan), "override"
        else:
            state = ControlState(
                scenario=self.scenario,
                time_s=now,
                interval_s=self.config.interval_s,
                current_plan=self.plan,
                rate_history=history,
                last_metrics=report.metrics if report else self._last_metrics(),
            )
            answer, source = self._ask_policy(state), "policy"
        t_wait = time.perf_counter()
        with self._apply_lock:
            waited = time.perf_counter() - t_wait  # an override's apply: not decision time
            if self._override_seq != override_seq:  # an override landed meanwhile: it wins
                answer, source = PolicyAnswer(self.plan, ms=answer.ms), "override"
            v = self._vet(answer, source, down)
            if v.plan is None:  # nothing better: keep what runs
                v = Vetted(self.plan, "keep", v.reason, v.problems, v.how, v.shield)
            assert v.plan is not None
            diff = diff_plans(self.scenario, self.plan, v.plan)
            t1 = time.perf_counter()
            v, diff, apply_s = self._apply(v, diff, t1)
            assert v.plan is not None
            d = Decision(
                seq=self._next_seq(),
                time_s=now,
                trigger=trigger,
                source=v.source,
                plan=v.plan,
                diff=diff,
                decision_ms=(t1 - t0 - waited) * 1000.0,
                metrics_ms=metrics_ms,
                policy_ms=answer.ms,
                apply_s=apply_s,
                fallback_reason=v.reason,
                problems=v.problems,
                how=v.how,
                load=dict(self.load),
                down=sorted(down),
                shield=v.shield,
            )
            self._commit(d, report)
        return d

    def _observe(
        self, trigger: str, recent_rates: Mapping[str, float] | None
    ) -> tuple[BackendReport | None, list[dict[str, float]], frozenset[str]]:
        """(the backend's report, the rate history the policy sees, the workers down): an
        interval reads and totals the report; a surge makes ``recent_rates`` the load."""
        report: BackendReport | None = None
        if trigger == "interval":
            report = self.backend.metrics()
            self._account(report)
            down = report.down
        else:
            down = self.backend.down_workers()
        history = [dict(r) for r in self.rate_history]
        if recent_rates is not None:
            with self._lock:
                self.load = {
                    s.name: float(recent_rates.get(s.name, 0.0)) for s in self.scenario.sources
                }
            history.append(dict(self.load))
        return report, history, down

    def _apply(self, v: Vetted, diff: PlanDiff, t1: float) -> tuple[Vetted, PlanDiff, float]:
        """Apply ``diff`` (running plan -> the vetted one): (what runs now, the diff applied,
        wall seconds since ``t1``). When the backend cannot switch, the old plan serves on
        (source ``apply_failed``)."""
        assert v.plan is not None
        if diff.empty:
            return v, diff, 0.0
        try:
            return v, diff, self.backend.apply(v.plan, diff, self._design_rates()).wall_s
        except Exception as exc:  # the backend could not switch: the old plan serves
            self.counters["apply_failures"] += 1
            reason = f"applying the plan failed: {type(exc).__name__}: {exc}"
            kept = Vetted(self.plan, "apply_failed", reason, [*v.problems, reason], v.how)
            return kept, PlanDiff(), time.perf_counter() - t1

    def _ask_policy(self, state: ControlState) -> PolicyAnswer:
        """The policy's answer (in a thread, with a timeout); timeouts and errors counted."""
        answer = self._caller.ask(state, self.plan)
        if answer.failure is PolicyFailure.TIMEOUT:
            self.counters["policy_timeouts"] += 1
        elif answer.failure is PolicyFailure.ERROR:
            self.counters["policy_errors"] += 1
        return answer

    def _vet(self, answer: PolicyAnswer, source: str, down: frozenset[str]) -> Vetted:
        """The candidate (a policy's behind the SLO shield, when on) if it passes
        :func:`check_plan`, else the MILP fallback (plan None when even that found none)."""
        problems: list[Problem] = []
        candidate = answer.plan
        shield = None
        if candidate is not None and source == "policy":
            candidate, shield = shielded(self.shield, candidate, self.load, down)
            if shield and shield["intervened"]:
                self.counters["shield_interventions"] += 1
        if candidate is not None:
            problems = check_plan(
                self.scenario,
                candidate,
                self.load,
                self.config.headroom,
                self.config.accuracy,
                down,
            )
            if not problems:
                return Vetted(candidate, source, shield=shield)
        reason = answer.message or problems[0].kind
        fb, how = self.fallback.plan(self.load, down, self.plan)
        self.counters["fallbacks"] += 1
        label = answer.failure.reason_label if answer.failure else problems[0].kind
        self.fallback_reasons[label] += 1
        return Vetted(fb, "fallback", reason, [str(p) for p in problems], how, shield)

    def _commit(self, d: Decision, report: BackendReport | None) -> None:
        with self._lock:
            self.counters["decisions"] += 1
            if d.diff.structural and d.trigger not in ("start", "resume"):
                self.counters["plan_changes"] += 1
            if d.source == "override":
                self.counters["override_intervals"] += 1
            if d.trigger in ("crash", "surge"):
                self.counters[f"{d.trigger}_replans"] += 1
            self.plan = d.plan
            rep = evaluate_plan(self.scenario, d.plan, self.load, self.config.accuracy)
            self.plan_cost = {
                "compute": rep.compute_cost,
                "communication": rep.communication_cost,
                "total": rep.total_cost,
                "accuracy": rep.accuracy,
                "predicted_attainment": predicted_attainment(self.scenario, d.plan, self.load),
            }
            self.last_decision = d
            self.decisions.append(d)
            self.decision_ms.append(d.decision_ms)
            if report is not None:
                self.last_report = report
        # the state file is the commit record: written before the log, after every decision,
        # so a kill between the two leaves no logged decision that a restart would replay
        self._save_state(final=False, time_s=d.time_s)
        record = decision_record(d, self.policy_name, self.plan_cost, report)
        scalars = decision_scalars(
            d, self.counters, self.plan_cost, len(self._plan_worker_list()), report
        )
        self.log.decision(record, scalars, d.seq)

    # ------------------------------------------------------------------ overrides

    def override(self, data: Any, hold_intervals: int = 1) -> OverrideResult:
        """An operator's plan (plan JSON, or ``{"plan": ..., "hold_intervals": n}``): checked
        like a policy's plan, applied and held for ``hold_intervals`` decisions, or refused
        (the result's outcome says why; its reasons list the failed checks)."""
        extra = (
            sorted(map(str, set(data) - {"plan", "hold_intervals"}))
            if (isinstance(data, dict) and "plan" in data)
            else []
        )
        if extra:
            self.counters["overrides_rejected"] += 1
            reason = (
                f"unknown key {extra[0]!r} (an override is {{'plan': ..., 'hold_intervals': n}})"
            )
            return OverrideResult(OverrideOutcome.MALFORMED, [reason])
        data, hold = override_request(data, hold_intervals)
        if hold is None:
            return OverrideResult(OverrideOutcome.BAD_HOLD)
        hold_intervals = hold
        try:
            plan = plan_from_dict(data, "<POST /plan>")
        except InputError as exc:
            self.counters["overrides_rejected"] += 1
            return OverrideResult(OverrideOutcome.MALFORMED, [str(exc)])
        t0 = time.perf_counter()
        with self._apply_lock:
            down = self.backend.down_workers()
            problems = check_plan(
                self.scenario, plan, self.load, self.config.headroom, self.config.accuracy, down
            )
            if problems:
                self.counters["overrides_rejected"] += 1
                return OverrideResult(OverrideOutcome.REJECTED, [str(p) for p in problems])
            diff = diff_plans(self.scenario, self.plan, plan)
            t1 = time.perf_counter()
            apply_s = 0.0
            if not diff.empty:
                apply_s = self.backend.apply(plan, diff, self._design_rates()).wall_s
            self._override_seq += 1
            self._override_hold = hold_intervals
            self.counters["overrides"] += 1
            d = Decision(
                seq=self._next_seq(),
                time_s=self.clock.now(),
                trigger="override",
                source="override",
                plan=plan,
                diff=diff,
                decision_ms=(t1 - t0) * 1000.0,
                apply_s=apply_s,
                load=dict(self.load),
                down=sorted(down),
            )
            self._commit(d, None)
        return OverrideResult(
            OverrideOutcome.APPLIED,
            seq=d.seq,
            hold_intervals=hold_intervals,
            diff=diff,
            apply_s=apply_s,
        )

    # ------------------------------------------------------------------ bookkeeping

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _plan_worker_list(self) -> list[str]:
        p = self.plan
        return [] if p is None else [s.worker for ss in p.worker_assignment.values() for s in ss]

    def _plan_workers(self) -> frozenset[str]:
        return frozenset(self._plan_worker_list())

    def _design_rates(self) -> dict[str, float]:
        return scaled(self.load, 1.0 + self.config.headroom)

    def _last_metrics(self) -> IntervalMetrics | None:
        return self.last_report.metrics if self.last_report else None

    def _account(self, report: BackendReport) -> None:
        """Total the report's interval and make its source rates the load."""
        m = report.metrics
        with self._lock:
            if m.duration > 0:
                self.load = {
                    s.name: float(m.rates.get(s.name, self.load.get(s.name, 0.0)))
                    for s in self.scenario.sources
                }
                self.rate_history.append(dict(self.load))
            self._run.add(m)
            self.last_report = report

    def _save_state(self, final: bool, time_s: float) -> None:
        """Write the state file (``time_s``: the trace time the state stands at: the last
        decision's, or at the end how far the backend has served)."""
        if self._state is None or self.plan is None:
            return
        with self._lock:
            data = {
                "scenario": self.scenario.name,
                "time_s": time_s,
                "seq": self.seq,
                "final": final,
                "policy": self.policy_name,
                "backend": self.backend.kind,
                "plan": self.plan.to_dict(),
                "counters": dict(self.resumed_counters + self.counters),
            }
        try:
            data["backend_counts"] = self.backend.counts()
        except Exception as exc:  # a dead backend must not stop the state being written
            data["backend_counts"] = {"error": repr(exc)}
        self._state.write(jsonable(data))

    # ------------------------------------------------------------------ views

    def snapshot(self) -> ControllerSnapshot:
        """A frozen, consistent view of the controller's state (what the HTTP API serves)."""
        with self._lock:
            return ControllerSnapshot(
                scenario=self.scenario.name,
                policy=self.policy_name,
                backend=self.backend.kind,
                plan=self.plan,
                plan_workers=self._plan_workers(),
                last_decision=self.last_decision,
                last_report=self.last_report,
                load=dict(self.load),
                counters=dict(self.counters),
                counters_cumulative=dict(self.resumed_counters + self.counters),
                fallback_reasons=dict(self.fallback_reasons),
                plan_cost=dict(self.plan_cost),
                totals=self._run.totals(),
                decision_ms=tuple(self.decision_ms),
                stopping=self.stopping,
                recent_decisions=tuple(self.decisions)[-RECENT_DECISIONS:],
                request_counts=dict(self.last_report.counts) if self.last_report else {},
            )

    def summary(self) -> dict[str, Any]:
        """Run totals: requests, SLO attainment, dollars, decisions, fallbacks, timings. The
        request counts are the backend's as of its last report, so they agree with the totals
        of the reported intervals and with the decision log."""
        snap = self.snapshot()
        return summary_of(snap, snap.request_counts or self.backend.counts())

    def run_info(self) -> dict[str, Any]:
        """The resolved configuration (``run.json``)."""
        c = self.config
        return {
            "started": datetime.fromtimestamp(self.started_wall, UTC).isoformat(),
            "scenario": self.scenario.name,
            "policy": self.policy_name,
            "config": {
                "interval_s": c.interval_s,
                "headroom": c.headroom,
                "accuracy": c.accuracy,
                "policy_timeout_s": c.policy_timeout_s,
                "fallback_time_limit_s": c.fallback_time_limit_s,
                "duration_s": c.duration_s,
                "state_file": str(c.state_file) if c.state_file else None,
                "speedup": self.clock.speedup,
                "shield": c.shield,
            },
            "backend": self.backend.run_info(),
            "tensorboard": self.log.tensorboard_error or ("on" if c.tensorboard else "off"),
        }
