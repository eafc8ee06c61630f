"""Side-by-side evaluation of control policies on the same simulator and traces.

```python
from jbrl.evaluation.report import render_table
from jbrl.evaluation.runner import evaluate
from jbrl.evaluation.traces import default_traces

ev = evaluate(scenario, default_traces(scenario), ["milp-reactive:headroom=0.2", "autoscaler"],
              sim="des", seeds=3)
console.print(render_table(ev))
```

Each policy runs on each trace and seed on the one rollout loop (:func:`jbrl.sim.rollout.rollout`):
it decides the first plan at t = 0, then once per control interval from what the simulator
reported (:class:`~jbrl.agents.policy.ControlState`); clairvoyant policies also get the true
trace. Figures per run (:class:`~jbrl.evaluation.aggregate.RunRecord`): dollars (compute +
communication), dollars per 1000 arriving requests, SLO attainment (requests within the latency
bound over requests finished or dropped), p99 end-to-end latency (exact over all requests in the
DES; in the fluid simulator the completion-weighted mean of the intervals' p99), mean accuracy of
the plans in force (weighted by arrivals), reconfigurations (model loads) and plan changes, and
the decision time per interval (wall time of ``decide``, plus the original solve time of memoized
planner results it reused). A policy that raises is reported in its row, not fatal.

Every run starts from a freshly built policy, so its figures depend on the policy, the trace and
the seed alone, not on the runs before it: the rule policies memoize planner calls in ways that
steer later decisions (the largest load a clamped solve met, sustainable scales per load mix), so
a policy object reused from run to run gave slightly different plans on later traces. Runs
execute in this process, or elsewhere through a :mod:`~jbrl.evaluation.executors` executor (a
local process pool, or Ray tasks on a local Ray or a cluster); the runs are put back in (policy,
trace, seed) order, so every figure is the same wherever they ran.

The rows and summary rows are :mod:`~jbrl.evaluation.aggregate`'s; the table is
:mod:`~jbrl.evaluation.report`'s, the plots :mod:`~jbrl.evaluation.plots`'.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from jbrl.agents.policy import Policy, policy_decider
from jbrl.errors import InputError, Param
from jbrl.evaluation.aggregate import SERIES_KEYS, Evaluation, RunRecord, aggregate
from jbrl.evaluation.executors import ProcessPool, RunExecutor, Unit
from jbrl.evaluation.policies import build_policies
from jbrl.planning.coverage import effective_capacity, plan_signature
from jbrl.planning.plan import Plan
from jbrl.planning.shield import ShieldStats
from jbrl.progress import ProgressBar
from jbrl.scenario.derive import with_load_time
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace
from jbrl.sim import FaultSchedule, SimConfig, make_simulator
from jbrl.sim.base import IntervalMetrics, Simulator
from jbrl.sim.rollout import BaseObserver, DecisionPoint, SimResult, rollout

MAX_SAMPLES = 4000  # latency samples kept per run for the CDF plot (the p99 uses all of them)


# --------------------------------------------------------------------------- one run


class _PolicyRun(BaseObserver):
    """A :class:`Policy` as the rollout's decision maker (timed, with the clairvoyant policies'
    lookahead), and the observer that records the run's series."""

    def __init__(
        self,
        scenario: Scenario,
        trace: Trace,
        policy: Policy,
        rec: RunRecord,
        on_interval: Callable[[], None] | None,
    ) -> None:
        self.scenario = scenario
        self.trace = trace
        self.policy = policy
        self.rec = rec
        self.on_interval_cb = on_interval
        self.decide = policy_decider(policy, scenario, trace)  # the lookahead if clairvoyant
        self.series: dict[str, list[float]] = {k: [] for k in SERIES_KEYS}
        self.decisions: list[float] = []
        self.samples: list[np.ndarray] = []
        self.sig: Any = None
        self._acc: dict[int, tuple[Plan, float | None]] = {}  # keeps the plan alive with its id

    def __call__(self, point: DecisionPoint) -> Plan | None:
        t0 = time.perf_counter()
        plan = self.decide(point)
        wall = time.perf_counter() - t0
        cached = float(getattr(self.policy, "cached_solve_s", 0.0))
        self.decisions.append((wall + cached) * 1000.0)
        return plan

    def on_decision(self, point: DecisionPoint, plan: Plan, changed: bool) -> None:
        if point.plan is None:
            self.sig = plan_signature(self.scenario, plan)
        elif changed:
            new_sig = plan_signature(self.scenario, plan)
            if new_sig != self.sig:
                self.rec.plan_changes += 1
            self.sig = new_sig

    def on_interval(self, m: IntervalMetrics, plan: Plan, simulator: Simulator) -> None:
        lat = simulator.interval_latencies()  # DES: this interval's requests
        if lat:
            self.samples.append(np.asarray(lat, dtype=float))
        if id(plan) not in self._acc:
            self._acc[id(plan)] = (plan, _plan_accuracy(self.scenario, plan))
        acc = self._acc[id(plan)][1]
        peak = max(self.trace.max_over(m.t_start, m.t_end).values(), default=0.0)
        s = self.series
        s["t"].append(m.t_start)
        s["load"].append(max(m.rates.values(), default=0.0))
        s["peak_load"].append(float(peak))
        s["capacity"].append(effective_capacity(self.scenario, plan, m.rates))
        s["dollars"].append(m.dollars)
        s["slo_attainment"].append(m.slo_attainment)
        s["p99_ms"].append(m.latency_ms.get("p99", math.nan))
        s["accuracy"].append(math.nan if acc is None else acc)
        s["reconfigurations"].append(float(len(m.reconfigured)))
        s["decision_ms"].append(self.decisions[-1])
        s["loading_s"].append(self._loading_s(m))
        if self.on_interval_cb is not None:
            self.on_interval_cb()

    def _loading_s(self, m: IntervalMetrics) -> float:
        """The longest model load that began at the start of interval ``m`` (s; 0 if none):
        the workers it names serve nothing for their load time."""
        if not m.reconfigured:
            return 0.0
        where = {w: (op, var) for w, op, var in self.sig}
        return max(
            (self.scenario.load_time(*where[w], w) for w in m.reconfigured if w in where),
            default=0.0,
        )


def run_policy(
    scenario: Scenario,
    trace: Trace,
    policy: Policy,
    *,
    label: str,
    trace_name: str,
    sim: str = "fluid",
    seed: int = 0,
    interval: float = 60.0,
    sim_config: SimConfig | None = None,
    on_interval: Callable[[], None] | None = None,
    faults: FaultSchedule | None = None,
) -> RunRecord:
    """Run ``policy`` over ``trace`` (per source of ``scenario``) in simulator ``sim``, under the
    fault schedule ``faults`` if given (crashes and link slow-downs the policy is not told
    of: it sees only their effect on the metrics)."""
    rec = RunRecord(policy=label, trace=trace_name, seed=seed)
    run = _PolicyRun(scenario, trace, policy, rec, on_interval)
    try:
        policy.reset(scenario, seed)
        result = rollout(
            make_simulator(sim, sim_config),
            scenario,
            trace,
            run,
            interval,
            seed=seed,
            faults=faults,
            observers=[run],
        )
    except Exception as exc:  # a policy (or its plan) failed: report, do not abort the evaluation
        rec.error = f"{type(exc).__name__}: {exc}"
        rec.series = run.series
        rec.decision_ms = run.series["decision_ms"]
        _debug_trace(exc)
        return rec
    _fill_record(rec, run, result)
    return rec


def _fill_record(rec: RunRecord, run: _PolicyRun, result: SimResult) -> None:
    """The figures of a finished run: totals, series, mean accuracy (weighted by arrivals) and
    the p99 latency (exact from the requests' latencies when the simulator reports them)."""
    series = run.series
    totals = result.totals
    rec.totals = totals.to_dict()
    rec.series = series
    rec.decision_ms = run.decisions
    stats = getattr(run.policy, "stats", None)
    if isinstance(stats, ShieldStats):
        rec.shield = stats.summary()
    arr = np.asarray(series["load"]) * np.asarray([m.duration for m in result.intervals])
    accs = np.asarray(series["accuracy"], dtype=float)
    ok = np.isfinite(accs)
    rec.accuracy = (
        float(np.average(accs[ok], weights=arr[ok])) if ok.any() and arr[ok].sum() > 0 else math.nan
    )
    if run.samples:
        allv = np.concatenate(run.samples)
        rec.p99_ms = float(np.percentile(allv, 99))
        rec.latency_exact = True
        if len(allv) > MAX_SAMPLES:
            idx = np.linspace(0, len(allv) - 1, MAX_SAMPLES).astype(int)
            allv = np.sort(allv)[idx]
        rec.latency_sample = allv
    else:
        rec.p99_ms = float(totals.latency_ms.get("p99", math.nan))


def _plan_accuracy(scenario: Scenario, plan: Plan) -> float | None:
    from jbrl.agents.rules import variants_of

    acc = scenario.accuracy_of(variants_of(scenario, plan))
    return None if acc is None or math.isinf(acc) else acc


def _debug_trace(exc: BaseException) -> None:
    """The traceback of a failed run on stderr, when ``JBRL_DEBUG`` is set."""
    if os.environ.get("JBRL_DEBUG"):
        traceback.print_exception(exc)


# --------------------------------------------------------------------------- many runs


@dataclass(frozen=True)
class RunSettings:
    """What every run of one evaluation shares (sent to each worker process or Ray node)."""

    scenario: Scenario
    traces: dict[str, Trace]
    seeds: list[int]
    sim: str
    interval: float
    sim_config: SimConfig | None = None


def evaluate(
    scenario: Scenario,
    traces: Mapping[str, Trace],
    policies: Sequence[str],
    *,
    sim: str = "fluid",
    seeds: int | Sequence[int] = 1,
    interval: float = 60.0,
    load_time: float | None = None,
    duration: float | None = None,
    sim_config: SimConfig | None = None,
    processes: int = 1,
    executor: RunExecutor | None = None,
    progress: bool = False,
) -> Evaluation:
    """Run every policy on every trace and seed; see the module docstring.

    ``traces`` map a name to a trace (per source or ``scale``); ``duration`` cuts them;
    ``load_time`` forces every model load time; ``processes > 1`` runs (policy, trace) units in
    parallel spawned processes; ``executor`` runs them there
    instead (e.g. :class:`~jbrl.evaluation.executors.RayTasks`, entered by the caller).
    """
    t_start = time.perf_counter()
    seed_list = _check_settings(sim, seeds, interval)
    if load_time is not None:
        scenario = with_load_time(scenario, load_time)
    settings = RunSettings(
        scenario, _prepare_traces(traces, scenario, duration), seed_list, sim, interval, sim_config
    )
    specs = list(policies)
    # bad input (unknown name, bad parameter) fails here, before any work starts
    built = build_policies(specs, scenario)
    if executor is None and processes > 1:
        executor = ProcessPool(processes)
    runs = _run_all(settings, specs, built, executor, progress)
    ev = Evaluation(
        scenario=scenario.name,
        simulator=sim,
        seeds=seed_list,
        interval_s=interval,
        load_time_s=load_time,
        policies=specs,
        traces=settings.traces,
        runs=runs,
        latency_bound_ms=_or_nan(scenario.slo.latency_ms),
        attainment_target=scenario.slo.attainment,
    )
    aggregate(ev)
    ev.wall_s = time.perf_counter() - t_start
    return ev


def check_evaluation(
    scenario: Scenario,
    traces: Mapping[str, Trace],
    policies: Sequence[str],
    sim: str,
    seeds: int | Sequence[int],
    interval: float,
    duration: float | None,
) -> None:
    """Raise the :class:`InputError` that :func:`evaluate` would raise for these settings,
    without running anything (the policies are built and dropped): a command checks its flags
    before long work such as planning, not after it."""
    _check_settings(sim, seeds, interval)
    _prepare_traces(traces, scenario, duration)
    build_policies(list(policies), scenario)


def _check_settings(sim: str, seeds: int | Sequence[int], interval: float) -> list[int]:
    """Validate the interval, the seeds and the simulator's name; the list of seeds."""
    if not (interval > 0 and math.isfinite(interval)):
        raise InputError(
            "must be a positive number of seconds", field=Param.INTERVAL, value=interval
        )
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise InputError("need at least one seed", field=Param.SEEDS, value=seeds)
    make_simulator(sim)  # validates the name
    return seed_list


def _prepare_traces(
    traces: Mapping[str, Trace], scenario: Scenario, duration: float | None
) -> dict[str, Trace]:
    """Every trace per source of ``scenario``, cut to ``duration`` seconds when given."""
    out: dict[str, Trace] = {}
    for name, tr in traces.items():
        tr = tr.for_scenario(scenario)
        if duration is not None:
            if not (duration > 0 and math.isfinite(duration)):
                raise InputError(
                    "must be a positive number of seconds", field=Param.DURATION, value=duration
                )
            tr = tr.with_duration(min(duration, tr.duration))
        if not tr.duration > 0:
            raise InputError("the trace has no duration", file=tr.file, field="duration_s")
        out[name] = tr
    return out


def _run_all(
    settings: RunSettings,
    specs: list[str],
    built: Mapping[str, Policy | str],
    executor: RunExecutor | None,
    progress: bool,
) -> list[RunRecord]:
    """Every run, in (policy, trace, seed) order; in this process or through ``executor``."""
    per_run = {
        n: math.ceil(tr.duration / settings.interval - 1e-9) for n, tr in settings.traces.items()
    }
    total = sum(per_run.values()) * len(settings.seeds) * len(specs)
    runs: list[RunRecord] = []
    with ProgressBar(progress, total, unit="intervals") as bar:
        if executor is None:
            for spec in specs:
                bar.describe(spec)
                unit = Unit(spec, tuple(settings.traces), tuple(settings.seeds))
                runs += run_unit(settings, unit, bar.advance, built[spec])
        else:
            runs = _run_elsewhere(settings, specs, executor, bar, per_run)
    keys = [(p, t, s) for p in specs for t in settings.traces for s in settings.seeds]
    order = {key: i for i, key in enumerate(keys)}
    runs.sort(key=lambda r: order.get((r.policy, r.trace, r.seed), 0))
    return runs


def _run_elsewhere(
    settings: RunSettings,
    specs: list[str],
    executor: RunExecutor,
    bar: ProgressBar,
    per_run: Mapping[str, int],
) -> list[RunRecord]:
    """Every unit through ``executor``, in the order they finish; a unit that crashes is
    recorded as failed runs (bad input still raises)."""
    seeds = [(s,) for s in settings.seeds] if executor.one_run_per_unit else [tuple(settings.seeds)]
    units = [Unit(spec, (tn,), ss) for spec in specs for tn in settings.traces for ss in seeds]
    runs: list[RunRecord] = []
    for unit, out in executor.run(run_unit, settings, units):
        if isinstance(out, InputError):
            raise out
        if isinstance(out, BaseException):
            error = f"{type(out).__name__}: {out}"
            runs += [
                RunRecord(unit.spec, t, s, error=error) for t in unit.traces for s in unit.seeds
            ]
        else:
            runs += out
        bar.describe(f"{unit.spec} on {', '.join(unit.traces)}")
        bar.advance(sum(per_run[t] for t in unit.traces) * len(unit.seeds))
    return runs


def run_unit(
    settings: RunSettings,
    unit: Unit,
    on_interval: Callable[[], None] | None = None,
    policy: Policy | str | None = None,
) -> list[RunRecord]:
    """The runs of one unit (one policy spec on some traces and seeds: one task's share of
    the work). Every run gets a freshly built policy (``policy``, when given, serves the first
    run); an error text stands for a policy that failed to build."""
    out = []
    for i, (tn, seed) in enumerate((t, s) for t in unit.traces for s in unit.seeds):
        if policy is None or i > 0:  # nothing memoized by an earlier run carries over
            policy = build_policies([unit.spec], settings.scenario)[unit.spec]
        if isinstance(policy, str):
            out.append(RunRecord(policy=unit.spec, trace=tn, seed=seed, error=policy))
            continue
        out.append(
            run_policy(
                settings.scenario,
                settings.traces[tn],
                policy,
                label=unit.spec,
                trace_name=tn,
                sim=settings.sim,
                seed=seed,
                interval=settings.interval,
                sim_config=settings.sim_config,
                on_interval=on_interval,
            )
        )
    return out


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)
