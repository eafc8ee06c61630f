"""The online controller (ARCHITECTURE.md, "Controller").

Every control interval (trace seconds; ``interval_s / speedup`` wall seconds)::

    report = backend.metrics()                      # rates, utilization, queues, SLO, dollars
    state  = ControlState(..., last_metrics=report.metrics)
    plan   = policy.decide(state)                   # in a thread, with a timeout
    problems = check_plan(plan, load, headroom)     # accuracy, capacity, one op/worker, health
    if problems or the policy raised/timed out:
        plan = FallbackPlanner.plan(load, down)     # exact MILP on the live workers
    backend.apply(plan, diff_plans(current, plan))  # only the difference
    log the decision (JSON lines + TensorBoard), write the state file

Between intervals the controller polls the backend's worker health several times per interval;
when a worker of the running plan goes down it decides at once (trigger ``crash``), so a crashed
worker is replaced within one interval. An operator's override (``POST /plan``) goes through the
same checks and is held for ``hold_intervals`` decisions. ``stop`` (SIGTERM in the CLI) ends the
loop after the current step; :meth:`Controller.close` writes the final state.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jbrl.agents.policy import ControlState, Policy
from jbrl.control.backends.base import Backend, BackendReport, PlanDiff, diff_plans
from jbrl.control.log import DecisionLog
from jbrl.control.safety import FallbackPlanner, Problem, check_plan
from jbrl.control.state import ControllerState, write_state
from jbrl.errors import InputError, Param
from jbrl.jsonable import jsonable
from jbrl.planning.cost import evaluate_plan
from jbrl.planning.coverage import scaled
from jbrl.planning.plan import Plan, plan_from_dict
from jbrl.scenario.model import Scenario
from jbrl.sim.base import IntervalMetrics


@dataclass(frozen=True)
class ControllerConfig:
    """Options of the control loop.

    * ``interval_s``: control interval (trace seconds).
    * ``headroom``: plans must have capacity for the observed load times ``1 + headroom``;
      fallback plans are made with ``max_util = 1 / (1 + headroom)``.
    * ``accuracy``: accuracy target (default: the scenario's SLO).
    * ``policy_timeout_s``: wall seconds a policy may take to decide.
    * ``fallback_time_limit_s``: HiGHS time limit of the fallback MILP.
    * ``duration_s``: stop after this much trace time (None: until stopped).
    * ``health_checks``: backend health polls per interval (crash reaction).
    * ``state_file``, ``log_dir``, ``tensorboard``: persistence and logging.
    """

    interval_s: float = 60.0
    headroom: float = 0.1
    accuracy: float | None = None
    policy_timeout_s: float = 10.0
    fallback_time_limit_s: float = 10.0
    duration_s: float | None = None
    health_checks: int = 4
    state_file: Path | None = None
    log_dir: Path | None = None
    tensorboard: bool = True
    history: int = 120

    def __post_init__(self) -> None:
        for name in ("interval_s", "policy_timeout_s", "fallback_time_limit_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise InputError("must be a positive number of seconds", field=name, value=v)
        if not (0 <= self.headroom < 10):
            raise InputError("must be in [0, 10)", field="headroom", value=self.headroom)
        if self.duration_s is not None and not self.duration_s > 0:
            raise InputError("must be positive", field="duration_s", value=self.duration_s)
        if self.health_checks < 1:
            raise InputError("must be >= 1", field="health_checks", value=self.health_checks)


@dataclass
class Decision:
    """One decision of the controller (what ``decisions.jsonl`` records)."""

    seq: int
    time_s: float
    trigger: str  # start | resume | interval | crash | surge | override
    source: str  # policy | fallback | override | resume | keep | apply_failed
    plan: Plan
    diff: PlanDiff
    decision_ms: float
    policy_ms: float | None = None
    metrics_ms: float | None = None
    apply_s: float = 0.0
    fallback_reason: str | None = None
    problems: list[str] = field(default_factory=list)
    how: str | None = None
    load: dict[str, float] = field(default_factory=dict)
    down: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return not self.diff.empty


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
        self.policy_name = policy_name or getattr(policy, "name", type(policy).__name__)
        self.clock = backend.clock
        self.fallback = FallbackPlanner(
            scenario,
            headroom=self.config.headroom,
            accuracy=self.config.accuracy,
            time_limit=self.config.fallback_time_limit_s,
        )
        self.log = DecisionLog(self.config.log_dir, self.config.tensorboard)
        self.resume = resume
        self._lock = threading.RLock()  # quick state (read by the HTTP API)
        self._apply_lock = threading.Lock()  # one reconfiguration at a time
        self._executor = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jbrl-policy")
        self._stuck: cf.Future[Any] | None = None
        self.plan: Plan | None = None
        self.plan_cost: dict[str, float | None] = {}
        self.load: dict[str, float] = dict(initial_rates or scenario.nominal_rates())
        self.rate_history: deque[dict[str, float]] = deque(maxlen=self.config.history)
        self.last_report: BackendReport | None = None
        self.last_decision: Decision | None = None
        self.decisions: deque[Decision] = deque(maxlen=1000)
        self.seq = resume.seq if resume else 0
        self.counters: Counter[str] = Counter(resume.counters if resume else {})
        self.fallback_reasons: Counter[str] = Counter()
        self.decision_ms: deque[float] = deque(maxlen=1000)
        self.totals: Counter[str] = Counter()
        self.latency_weighted: Counter[str] = Counter()
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
            candidate: Plan | None = self.resume.plan
            err = None
            source, trigger, policy_ms = "resume", "resume", None
        else:
            # the expected load stands in for an observation at the first decision
            state = ControlState(
                self.scenario, now, self.config.interval_s, rate_history=[dict(self.load)]
            )
            candidate, err, policy_ms = self._ask_policy(state)
            source, trigger = "policy", "start"
        plan, source, reason, problems, how = self._vet(candidate, err, source, frozenset())
        if plan is None:
            raise InputError(
                f"no plan to start with: {reason}; the policy's plan was rejected "
                f"({'; '.join(problems) or err}) and the MILP fallback found none",
                field=Param.POLICY,
                value=self.policy_name,
            )
        t1 = time.perf_counter()
        self.backend.start(plan, self._design_rates())
        diff = diff_plans(self.scenario, None, plan)
        d = Decision(
            seq=self._next_seq(),
            time_s=now,
            trigger=trigger,
            source=source,
            plan=plan,
            diff=diff,
            decision_ms=(t1 - t0) * 1000.0,
            policy_ms=policy_ms,
            apply_s=time.perf_counter() - t1,
            fallback_reason=reason,
            problems=problems,
            how=how,
            load=dict(self.load),
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
            in_plan = down & set(self._plan_workers())
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
        self._save_state(final=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
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
        report: BackendReport | None = None
        history = [dict(r) for r in self.rate_history]
        if trigger == "interval":
            report = self.backend.metrics()
            self._account(report)
            history = [dict(r) for r in self.rate_history]
            down = report.down
        else:
            down = self.backend.down_workers()
        t0 = time.perf_counter()  # decision time starts once the backend has reported
        metrics_ms = (t0 - t_read) * 1000.0
        if recent_rates is not None:
            with self._lock:
                self.load = {
                    s.name: float(recent_rates.get(s.name, 0.0)) for s in self.scenario.sources
                }
            history.append(dict(self.load))
        now = self.clock.now()
        override_seq = self._override_seq
        policy_ms: float | None = None
        if self._override_hold > 0 and trigger == "interval":
            self._override_hold -= 1
            candidate, err, source = self.plan, None, "override"
        else:
            state = ControlState(
                scenario=self.scenario,
                time_s=now,
                interval_s=self.config.interval_s,
                current_plan=self.plan,
                rate_history=history,
                last_metrics=report.metrics if report else self._last_metrics(),
            )
            candidate, err, policy_ms = self._ask_policy(state)
            source = "policy"
        t_wait = time.perf_counter()
        with self._apply_lock:
            waited = time.perf_counter() - t_wait  # an override's apply: not decision time
            if self._override_seq != override_seq:  # an override landed meanwhile: it wins
                candidate, err, source = self.plan, None, "override"
            plan, source, reason, problems, how = self._vet(candidate, err, source, down)
            if plan is None:  # nothing better: keep what runs
                plan, source = self.plan, "keep"
            assert plan is not None
            diff = diff_plans(self.scenario, self.plan, plan)
            t1 = time.perf_counter()
            apply_s = 0.0
            if not diff.empty:
                try:
                    apply_s = self.backend.apply(plan, diff, self._design_rates()).wall_s
                except Exception as exc:  # the backend could not switch: the old plan serves
                    self.counters["apply_failures"] += 1
                    reason = f"applying the plan failed: {type(exc).__name__}: {exc}"
                    problems = [*problems, reason]
                    plan, source = self.plan, "apply_failed"
                    assert plan is not None
                    diff = PlanDiff()
                    apply_s = time.perf_counter() - t1
            d = Decision(
                seq=self._next_seq(),
                time_s=now,
                trigger=trigger,
                source=source,
                plan=plan,
                diff=diff,
                decision_ms=(t1 - t0 - waited) * 1000.0,
                metrics_ms=metrics_ms,
                policy_ms=policy_ms,
                apply_s=apply_s,
                fallback_reason=reason,
                problems=problems,
                how=how,
                load=dict(self.load),
                down=sorted(down),
            )
            self._commit(d, report)
        return d

    def _ask_policy(self, state: ControlState) -> tuple[Plan | None, str | None, float | None]:
        """(plan, error, wall ms) from the policy, in a thread with a timeout."""
        if self._stuck is not None:
            if not self._stuck.done():
                return None, "the policy is still busy with a decision that timed out", None
            self._stuck = None
        t = time.perf_counter()
        fut = self._executor.submit(self.policy.decide, state)
        try:
            plan = fut.result(timeout=self.config.policy_timeout_s)
        except cf.TimeoutError:
            self._stuck = fut
            self.counters["policy_timeouts"] += 1
            return None, f"the policy timed out after {self.config.policy_timeout_s:g} s", None
        except Exception as exc:
            self.counters["policy_errors"] += 1
            ms = (time.perf_counter() - t) * 1000.0
            return None, f"the policy raised {type(exc).__name__}: {exc}", ms
        ms = (time.perf_counter() - t) * 1000.0
        if plan is None:
            return self.plan, None, ms  # None: keep the current plan (still checked)
        if not isinstance(plan, Plan):
            return None, f"the policy returned {type(plan).__name__}, not a Plan", ms
        return plan, None, ms

    def _vet(
        self, candidate: Plan | None, err: str | None, source: str, down: frozenset[str]
    ) -> tuple[Plan | None, str, str | None, list[str], str | None]:
        """(plan to run, source, fallback reason, problems, how) — the MILP plan when the
        candidate is missing or fails :func:`check_plan`."""
        problems: list[Problem] = []
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
                return candidate, source, None, [], None
        reason = err or problems[0].kind
        fb, how = self.fallback.plan(self.load, down, self.plan)
        self.counters["fallbacks"] += 1
        self.fallback_reasons[_reason_label(err, problems)] += 1
        return fb, "fallback", reason, [str(p) for p in problems], how

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
            }
            self.last_decision = d
            self.decisions.append(d)
            self.decision_ms.append(d.decision_ms)
            if report is not None:
                self.last_report = report
        self.log.decision(self._record(d, report), self._scalars(d, report), d.seq)
        if d.changed or d.trigger in ("start", "resume", "override") or d.seq % 10 == 0:
            self._save_state(final=False)

    # ------------------------------------------------------------------ overrides

    def override(self, data: Any, hold_intervals: int = 1) -> tuple[int, dict[str, Any]]:
        """An operator's plan: (HTTP status, body). 400 with the reasons when it fails."""
        if isinstance(data, dict) and "plan" in data:
            hold_intervals = data.get("hold_intervals", hold_intervals)
            data = data["plan"]
        if (
            isinstance(hold_intervals, bool)
            or not isinstance(hold_intervals, int)
            or not (0 <= hold_intervals <= 10_000)
        ):
            return 400, {"error": "hold_intervals must be an integer in [0, 10000]"}
        try:
            plan = plan_from_dict(data, "<POST /plan>")
        except InputError as exc:
            self.counters["overrides_rejected"] += 1
            return 400, {"error": "malformed plan", "reasons": [str(exc)]}
        t0 = time.perf_counter()
        with self._apply_lock:
            down = self.backend.down_workers()
            problems = check_plan(
                self.scenario, plan, self.load, self.config.headroom, self.config.accuracy, down
            )
            if problems:
                self.counters["overrides_rejected"] += 1
                return 400, {"error": "plan rejected", "reasons": [str(p) for p in problems]}
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
        return 200, {
            "applied": True,
            "seq": d.seq,
            "hold_intervals": hold_intervals,
            "diff": diff.to_dict(),
            "apply_s": apply_s,
        }

    # ------------------------------------------------------------------ bookkeeping

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _plan_workers(self) -> list[str]:
        p = self.plan
        return [] if p is None else [s.worker for ss in p.worker_assignment.values() for s in ss]

    def _design_rates(self) -> dict[str, float]:
        return scaled(self.load, 1.0 + self.config.headroom)

    def _last_metrics(self) -> IntervalMetrics | None:
        return self.last_report.metrics if self.last_report else None

    def _account(self, report: BackendReport) -> None:
        m = report.metrics
        with self._lock:
            if m.duration > 0:
                self.load = {
                    s.name: float(m.rates.get(s.name, self.load.get(s.name, 0.0)))
                    for s in self.scenario.sources
                }
                self.rate_history.append(dict(self.load))
            t = self.totals
            t["duration"] += m.duration
            t["arrivals"] += m.arrivals
            t["completed"] += m.completed
            t["within_slo"] += m.within_slo
            t["dropped"] += m.dropped_total
            t["compute_dollars"] += m.compute_dollars
            t["communication_dollars"] += m.communication_dollars
            for k, v in m.latency_ms.items():
                if m.completed > 0 and math.isfinite(v):
                    self.latency_weighted[k] += v * m.completed
                    self.latency_weighted[f"n_{k}"] += m.completed
            self.last_report = report

    def _save_state(self, final: bool) -> None:
        path = self.config.state_file
        if path is None or self.plan is None:
            return
        with self._lock:
            data = {
                "scenario": self.scenario.name,
                "time_s": self.clock.now(),
                "seq": self.seq,
                "final": final,
                "policy": self.policy_name,
                "backend": self.backend.kind,
                "plan": self.plan.to_dict(),
                "counters": dict(self.counters),
            }
        try:
            data["backend_counts"] = self.backend.counts()
        except Exception as exc:  # a dead backend must not stop the state being written
            data["backend_counts"] = {"error": repr(exc)}
        write_state(path, jsonable(data))

    # ------------------------------------------------------------------ views

    def run_slo_attainment(self) -> float:
        t = self.totals
        done = t["completed"] + t["dropped"]
        return t["within_slo"] / done if done > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        """Run totals: requests, SLO attainment, dollars, decisions, fallbacks, timings."""
        with self._lock:
            t = dict(self.totals)
            dur = t.get("duration", 0.0)
            dollars = t.get("compute_dollars", 0.0) + t.get("communication_dollars", 0.0)
            lat = {
                k: (self.latency_weighted[k] / self.latency_weighted[f"n_{k}"])
                if self.latency_weighted[f"n_{k}"] > 0
                else None
                for k in ("p50", "p95", "p99", "mean")
            }
            dms = sorted(self.decision_ms)
            out = {
                "scenario": self.scenario.name,
                "policy": self.policy_name,
                "backend": self.backend.kind,
                "duration_s": dur,
                "arrivals": t.get("arrivals", 0.0),
                "completed": t.get("completed", 0.0),
                "dropped": t.get("dropped", 0.0),
                "slo_attainment": self.run_slo_attainment(),
                "dollars": dollars,
                "dollars_per_hour": dollars * 3600.0 / dur if dur > 0 else None,
                "latency_ms": lat,
                "counters": dict(self.counters),
                "fallback_reasons": dict(self.fallback_reasons),
                "decision_ms": {
                    "p50": _pct(dms, 0.5),
                    "p95": _pct(dms, 0.95),
                    "max": dms[-1] if dms else None,
                },
                "plan": self.plan.to_dict() if self.plan else None,
            }
        out["backend_counts"] = self.backend.counts()
        return jsonable(out)

    def run_info(self) -> dict[str, Any]:
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
            },
            "backend": self.backend.run_info(),
            "tensorboard": self.log.tensorboard_error or ("on" if c.tensorboard else "off"),
        }

    def _record(self, d: Decision, report: BackendReport | None) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "seq": d.seq,
            "time_s": d.time_s,
            "wall": datetime.now(UTC).isoformat(),
            "trigger": d.trigger,
            "source": d.source,
            "policy": self.policy_name,
            "decision_ms": d.decision_ms,
            "policy_ms": d.policy_ms,
            "metrics_ms": d.metrics_ms,
            "apply_s": d.apply_s,
            "fallback_reason": d.fallback_reason,
            "problems": d.problems,
            "how": d.how,
            "load": d.load,
            "down": d.down,
            "changed": d.changed,
            "diff": d.diff.to_dict(),
            "plan_cost": dict(self.plan_cost),
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
                "dollars_per_hour": m.dollars * 3600.0 / m.duration if m.duration > 0 else None,
                "utilization": m.utilization,
                "worker_queue": report.worker_queue,
            }
            rec["counts"] = report.counts
        return rec

    def _scalars(self, d: Decision, report: BackendReport | None) -> dict[str, float]:
        out: dict[str, float] = {
            "control/decision_ms": d.decision_ms,
            "control/fallbacks_total": float(self.counters["fallbacks"]),
            "control/plan_changes_total": float(self.counters["plan_changes"]),
            "control/plan_dollars_per_hour": float(self.plan_cost.get("total") or 0.0),
            "control/workers_in_plan": float(len(self._plan_workers())),
            "control/apply_s": d.apply_s,
        }
        for src, r in d.load.items():
            out[f"load/{src}"] = r
        if report is not None:
            m = report.metrics
            if m.duration > 0:
                out["control/dollars_per_hour"] = m.dollars * 3600.0 / m.duration
            out["control/slo_attainment"] = m.slo_attainment
            for k in ("p50", "p95", "p99"):
                out[f"control/latency_{k}_ms"] = m.latency_ms.get(k, math.nan)
            out["backend/in_flight"] = m.in_flight
            out["backend/dropped"] = m.dropped_total
            out["backend/down_workers"] = float(len(report.down))
        return out


def _reason_label(err: str | None, problems: list[Problem]) -> str:
    if err is not None:
        if "timed out" in err:
            return "policy_timeout"
        if "busy" in err:
            return "policy_busy"
        return "policy_error"
    return problems[0].kind if problems else "unknown"


def _pct(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, math.ceil(q * len(sorted_vals)) - 1))
    return sorted_vals[i]
