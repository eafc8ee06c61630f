"""Side-by-side evaluation of control policies on the same simulator and traces.

```python
from jbrl.evaluation.runner import evaluate, default_traces, render_table, write_plots

ev = evaluate(scenario, default_traces(scenario), ["milp-reactive:headroom=0.2", "autoscaler"],
              sim="des", seeds=3)
console.print(render_table(ev)); write_plots(ev, "runs/eval")
```

Each policy runs on each trace and seed: it decides the first plan at t = 0, then once per
control interval from what the simulator reported (:class:`~jbrl.agents.policy.ControlState`);
clairvoyant policies also get the true trace. Figures per run: dollars (compute + communication),
dollars per 1000 arriving requests, SLO attainment (requests within the latency bound over
requests finished or dropped), p99 end-to-end latency (exact over all requests in the DES; in
the fluid simulator the completion-weighted mean of the intervals' p99), mean accuracy of the
plans in force (weighted by arrivals), reconfigurations (model loads) and plan changes, and the
decision time per interval (wall time of ``decide``, plus the original solve time of memoized
planner results it reused). A policy that raises is reported in its row, not fatal.

Rows aggregate the seeds of one policy on one trace (dollars and reconfigurations are means per
run; attainment is pooled; ``worst`` is the lowest attainment of a single run); the summary row of
a policy aggregates all its traces (dollars and reconfigurations summed over traces, per seed).
"""

from __future__ import annotations

import math
import multiprocessing
import re
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from jbrl.agents.policy import ControlState, Policy, get_policy, parse_policy_spec
from jbrl.errors import InputError, Param
from jbrl.jsonable import finite_or_none
from jbrl.planning.coverage import effective_capacity, plan_signature
from jbrl.planning.plan import Plan
from jbrl.scenario.derive import with_load_time
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace, load_trace, parse_trace
from jbrl.sim import SimConfig, make_simulator
from jbrl.sim.base import IntervalMetrics, Simulator
from jbrl.sim.rollout import BaseObserver, DecisionPoint, rollout

TRACES_PACKAGE = "jbrl.configs"
TRACES_DIR = "traces"
DEFAULT_TRACE = "flash_crowd"
MAX_SAMPLES = 4000  # latency samples kept per run for the CDF plot (the p99 uses all of them)


# --------------------------------------------------------------------------- inputs


def embedded_traces() -> list[str]:
    """Names of the default evaluation traces shipped in ``configs/traces/``."""
    root = resources.files(TRACES_PACKAGE) / TRACES_DIR
    if not root.is_dir():
        return []
    return sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".csv"))


def resolve_trace(spec: str | Path, scenario: Scenario) -> tuple[str, Trace]:
    """A trace CSV path or the name of an embedded evaluation trace -> (name, per-source trace)."""
    path = Path(spec)
    if path.is_file():
        return path.stem, load_trace(path, scenario)
    name = str(spec)
    if name in embedded_traces():
        text = (resources.files(TRACES_PACKAGE) / TRACES_DIR / f"{name}.csv").read_text("utf-8")
        return name, parse_trace(text, f"<embedded trace {name}>").for_scenario(scenario)
    raise InputError(
        f"no such trace file or embedded trace (embedded: {', '.join(embedded_traces()) or 'none'})",
        field=Param.TRACE,
        value=name,
    )


def default_traces(scenario: Scenario) -> dict[str, Trace]:
    """Every embedded evaluation trace, per source of ``scenario``."""
    return dict(resolve_trace(n, scenario) for n in embedded_traces())


def parse_policies(text: str | Sequence[str]) -> list[str]:
    """``"a,b:x=1"`` (or a list of such strings) -> ``["a", "b:x=1"]``, duplicates dropped."""
    items = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        for spec in item.split(","):
            spec = spec.strip()
            if spec and spec not in out:
                out.append(spec)
    if not out:
        raise InputError("no policy given", field=Param.POLICIES, value=text)
    return out


# --------------------------------------------------------------------------- one run


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

    def to_dict(self, series: bool = True) -> dict[str, Any]:
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
            out["series"] = {k: [finite_or_none(x) for x in v] for k, v in self.series.items()}
        return out


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
)


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
        self.look = trace if policy.clairvoyant else None
        self.series: dict[str, list[float]] = {k: [] for k in SERIES_KEYS}
        self.decisions: list[float] = []
        self.samples: list[np.ndarray] = []
        self.sig: Any = None
        self._acc: dict[int, tuple[Plan, float | None]] = {}  # keeps the plan alive with its id

    def __call__(self, point: DecisionPoint) -> Plan:
        state = ControlState(
            self.scenario,
            point.time_s,
            point.interval_s,
            point.plan,
            point.history,
            point.last,
            self.look,
        )
        t0 = time.perf_counter()
        plan = self.policy.decide(state)
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
        if self.on_interval_cb is not None:
            self.on_interval_cb()


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
) -> RunRecord:
    """Run ``policy`` over ``trace`` (per source of ``scenario``) in simulator ``sim``."""
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
            observers=[run],
        )
    except Exception as exc:  # a policy (or its plan) failed: report, do not abort the evaluation
        rec.error = f"{type(exc).__name__}: {exc}"
        rec.series = run.series
        rec.decision_ms = run.series["decision_ms"]
        _debug_trace(exc)
        return rec
    series = run.series
    totals = result.totals
    rec.totals = totals.to_dict()
    rec.series = series
    rec.decision_ms = run.decisions
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
    return rec


def _plan_accuracy(scenario: Scenario, plan: Plan) -> float | None:
    from jbrl.agents.rules import variants_of

    acc = scenario.accuracy_of(variants_of(scenario, plan))
    return None if acc is None or math.isinf(acc) else acc


def _debug_trace(exc: BaseException) -> None:
    import os

    if os.environ.get("JBRL_DEBUG"):
        traceback.print_exception(exc)


# --------------------------------------------------------------------------- many runs


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

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (finite_or_none(v) if isinstance(v, float) else v) for k, v in self.__dict__.items()
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
    wall_s: float = 0.0

    def to_dict(self, series: bool = True) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "simulator": self.simulator,
            "seeds": self.seeds,
            "interval_s": self.interval_s,
            "load_time_s": self.load_time_s,
            "latency_bound_ms": self.latency_bound_ms,
            "policies": self.policies,
            "traces": {
                n: {"file": t.file, "duration_s": t.duration} for n, t in self.traces.items()
            },
            "rows": [r.to_dict() for r in self.rows],
            "summary": [r.to_dict() for r in self.summary],
            "runs": [r.to_dict(series) for r in self.runs],
            "wall_s": self.wall_s,
        }

    def row(self, policy: str, trace: str = "all") -> Row | None:
        for r in self.summary if trace == "all" else self.rows:
            if r.policy == policy and r.trace == trace:
                return r
        return None


def _aggregate(policy: str, trace: str, runs: list[RunRecord], per_trace: int) -> Row:
    ok = [r for r in runs if r.error is None]
    err = next((r.error for r in runs if r.error), None)
    if not ok:
        nan = math.nan
        return Row(policy, trace, len(runs), len(runs), nan, nan, nan, nan, nan, nan, nan, nan,
                   nan, nan, err)  # fmt: skip
    n_seeds = max(1, len(ok) / max(1, per_trace))
    dollars = sum(r.totals["dollars"] for r in ok)
    arrivals = sum(r.totals["arrivals"] for r in ok)
    within = sum(r.totals["within_slo"] for r in ok)
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
    )


def aggregate(ev: Evaluation) -> None:
    """Fill ``ev.rows`` and ``ev.summary`` from ``ev.runs``."""
    ev.rows, ev.summary = [], []
    for p in ev.policies:
        mine = [r for r in ev.runs if r.policy == p]
        for t in ev.traces:
            runs = [r for r in mine if r.trace == t]
            if runs:
                ev.rows.append(_aggregate(p, t, runs, 1))
        if mine:
            ev.summary.append(_aggregate(p, "all", mine, len(ev.traces)))


#: policies whose factory takes the scenario (``ppo`` alone loads the scenario's shipped model)
SCENARIO_AWARE = {"ppo"}


def build_policies(specs: Sequence[str], scenario: Scenario) -> dict[str, Policy | str]:
    """spec -> policy, or an error text for a policy that fails for another reason than bad
    input (bad input — an unknown name, a bad parameter, a missing model file — raises)."""
    out: dict[str, Policy | str] = {}
    for spec in specs:
        defaults = {"scenario": scenario} if parse_policy_spec(spec)[0] in SCENARIO_AWARE else {}
        try:
            out[spec] = get_policy(spec, **defaults)
        except InputError:
            raise
        except Exception as exc:
            out[spec] = f"{type(exc).__name__}: {exc}"
    return out


def probe_policy(spec: str, scenario: Scenario, interval: float = 60.0) -> str | None:
    """None when ``spec`` builds and makes a first decision on ``scenario``; else why not (used
    to include the shipped PPO policy only when there is one that fits the scenario)."""
    try:
        policy = build_policies([spec], scenario)[spec]
        if isinstance(policy, str):
            return policy
        policy.reset(scenario, 0)
        policy.decide(ControlState(scenario, 0.0, interval))
    except Exception as exc:
        return exc.reason if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
    return None


def _run_unit(
    scenario: Scenario,
    traces: Mapping[str, Trace],
    spec: str,
    trace_names: Sequence[str],
    seeds: Sequence[int],
    sim: str,
    interval: float,
    sim_config: SimConfig | None,
    on_interval: Callable[[], None] | None = None,
    policy: Policy | str | None = None,
) -> list[RunRecord]:
    """All runs of one policy spec on some traces (one process's share of the work)."""
    if policy is None:
        policy = build_policies([spec], scenario)[spec]
    out = []
    for tn in trace_names:
        for seed in seeds:
            if isinstance(policy, str):
                out.append(RunRecord(policy=spec, trace=tn, seed=seed, error=policy))
                continue
            out.append(
                run_policy(
                    scenario,
                    traces[tn],
                    policy,
                    label=spec,
                    trace_name=tn,
                    sim=sim,
                    seed=seed,
                    interval=interval,
                    sim_config=sim_config,
                    on_interval=on_interval,
                )
            )
    return out


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
    progress: bool = False,
) -> Evaluation:
    """Run every policy on every trace and seed; see the module docstring.

    ``traces`` map a name to a trace (per source or ``scale``); ``duration`` cuts them;
    ``load_time`` forces every model load time; ``processes > 1`` runs (policy, trace) units in
    parallel processes (each memoizes its own planner calls).
    """
    t_start = time.perf_counter()
    if not (interval > 0 and math.isfinite(interval)):
        raise InputError(
            "must be a positive number of seconds", field=Param.INTERVAL, value=interval
        )
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise InputError("need at least one seed", field=Param.SEEDS, value=seeds)
    make_simulator(sim)  # validates the name
    if load_time is not None:
        scenario = with_load_time(scenario, load_time)
    trs: dict[str, Trace] = {}
    for name, tr in traces.items():
        tr = tr.for_scenario(scenario)
        if duration is not None:
            if not (duration > 0 and math.isfinite(duration)):
                raise InputError("must be a positive number of seconds", field=Param.DURATION,
                                 value=duration)  # fmt: skip
            tr = tr.with_duration(min(duration, tr.duration))
        if not tr.duration > 0:
            raise InputError("the trace has no duration", file=tr.file, field="duration_s")
        trs[name] = tr
    specs = list(policies)
    # bad input (unknown name, bad parameter) fails here, before any work starts
    built = build_policies(specs, scenario)
    per_run = {n: math.ceil(tr.duration / interval - 1e-9) for n, tr in trs.items()}
    total = sum(per_run.values()) * len(seed_list) * len(specs)
    runs: list[RunRecord] = []
    with _Progress(progress, total) as bar:
        if processes <= 1:
            for spec in specs:
                bar.describe(spec)
                runs += _run_unit(scenario, trs, spec, list(trs), seed_list, sim, interval,
                                  sim_config, bar.advance, built[spec])  # fmt: skip
        else:
            # spawn, not fork: a forked child inherits HiGHS's thread pool without its threads
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
                futs = {
                    pool.submit(
                        _run_unit, scenario, trs, spec, [tn], seed_list, sim, interval, sim_config
                    ): (spec, tn)  # fmt: skip
                    for spec in specs
                    for tn in trs
                }
                for fut in as_completed(futs):
                    spec, tn = futs[fut]
                    try:
                        runs += fut.result()
                    except InputError:
                        raise
                    except Exception as exc:
                        runs += [
                            RunRecord(spec, tn, s, error=f"{type(exc).__name__}: {exc}")
                            for s in seed_list
                        ]
                    bar.describe(f"{spec} on {tn}")
                    bar.advance(per_run[tn] * len(seed_list))
    order = {(p, t, s): i for i, (p, t, s) in enumerate(
        (p, t, s) for p in specs for t in trs for s in seed_list)}  # fmt: skip
    runs.sort(key=lambda r: order.get((r.policy, r.trace, r.seed), 0))
    ev = Evaluation(
        scenario=scenario.name,
        simulator=sim,
        seeds=seed_list,
        interval_s=interval,
        load_time_s=load_time,
        policies=specs,
        traces=trs,
        runs=runs,
        latency_bound_ms=scenario.slo.latency_ms,
    )
    aggregate(ev)
    ev.wall_s = time.perf_counter() - t_start
    return ev


class _Progress:
    """A rich progress bar on stderr (or nothing)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._p: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._p.__enter__()
            self._task = self._p.add_task("evaluating", total=self.total)
        return self

    def describe(self, text: str) -> None:
        if self._p is not None:
            self._p.update(self._task, description=f"evaluating {text}")

    def advance(self, n: int = 1) -> None:
        if self._p is not None:
            self._p.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(None, None, None)


# --------------------------------------------------------------------------- output


def render_table(ev: Evaluation, title: str | None = None) -> Any:
    """The side-by-side table (rich). With one trace the summary rows (equal to the trace's)
    and the trace column are left out; ``worst`` only appears when there is more than one run
    per policy."""
    from rich import box
    from rich.table import Table

    lt = "scenario's load times" if ev.load_time_s is None else f"load time {ev.load_time_s:g} s"
    t = Table(
        title=title
        or (
            f"{ev.scenario}: {ev.simulator} simulator, {len(ev.seeds)} seed(s), "
            f"{ev.interval_s:g} s intervals, {lt}"
        ),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="$: dollars per run (all: summed over traces); SLO: requests within the latency "
        "bound; reconf: model loads; decide: ms per decision, mean/max",
    )
    multi = len(ev.traces) > 1
    worst = multi or len(ev.seeds) > 1
    keep = [True, multi, True, True, True, worst, True, True, True, False, True]
    longest = {
        "policy": max((len(p) for p in ev.policies), default=6),
        "trace": max((len(n) for n in ev.traces), default=5),
    }
    for (name, _), k in zip(_COLUMNS, keep, strict=True):
        if k:
            t.add_column(
                name,
                justify="left" if name in ("policy", "trace") else "right",
                no_wrap=name != "policy",
                overflow="fold",
                min_width=min(longest.get(name, 0), 34) or None,
            )
    for p in ev.policies:
        rows = [r for r in ev.rows if r.policy == p]
        rows += [r for r in ev.summary if r.policy == p] if multi else []
        for i, r in enumerate(rows):
            cells = [c for c, k in zip(_cells(r), keep, strict=True) if k]
            style = "bold" if r.trace == "all" else None
            t.add_row(*cells, style=style, end_section=multi and i == len(rows) - 1)
    return t


def print_table(console: Any, table: Any) -> None:
    """Print ``table`` on ``console``, widening the console for it when the terminal is
    narrower than the table's minimum width (the lines then wrap, but no figure is cut)."""
    need = console.measure(table, options=console.options.update_width(10_000)).maximum
    width = console.width
    if need > width:
        console.width = need
    try:
        console.print(table)
    finally:
        console.width = width


_COLUMNS = [
    ("policy", "policy"),
    ("trace", "trace"),
    ("$", "$"),
    ("$/1k req", "$/1k req"),
    ("SLO", "SLO"),
    ("worst", "worst"),
    ("p99 ms", "p99 ms"),
    ("acc", "accuracy"),
    ("reconf", "reconf"),
    ("changes", "changes"),
    ("decide", "decide ms (mean / max)"),
]


def _cells(r: Row, error_text: bool = False) -> list[str]:
    if r.errors == r.runs:
        why = (r.error or "")[:100] if error_text else "(see below)"
        return [r.policy, r.trace, "failed", "", "", "", "", "", "", "", why]
    f = lambda x, spec: "-" if not math.isfinite(x) else format(x, spec)  # noqa: E731
    pct = lambda x: "-" if not math.isfinite(x) else f"{100 * x:.2f}%"  # noqa: E731
    return [
        r.policy + (f" ({r.errors} failed)" if r.errors else ""),
        r.trace,
        f(r.dollars, ".3f"),
        f(r.dollars_per_1k, ".4f"),
        pct(r.slo_attainment),
        pct(r.worst_attainment),
        f(r.p99_ms, ".0f"),
        f(r.accuracy, ".2f"),
        f(r.reconfigurations, ".1f"),
        f(r.plan_changes, ".1f"),
        f"{f(r.decision_mean_ms, '.1f')}/{f(r.decision_max_ms, '.0f')}",
    ]


def markdown_table(ev: Evaluation) -> str:
    """The same table in Markdown."""
    head = [md for _, md in _COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in ev.policies:
        for r in [r for r in ev.rows if r.policy == p] + [r for r in ev.summary if r.policy == p]:
            cells = _cells(r, error_text=True)
            if r.trace == "all":
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def write_plots(ev: Evaluation, folder: str | Path) -> list[Path]:
    """PNG plots per trace: load vs provisioned capacity per policy, cumulative dollars, latency
    CDF (from every request in the DES; from the intervals' p50/p95/p99 in the fluid model).
    The first seed's run is drawn for the time series; the CDF pools the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for tn in ev.traces:
        first = {
            p: next((r for r in ev.runs if r.policy == p and r.trace == tn and not r.error), None)
            for p in ev.policies
        }
        shown = {p: r for p, r in first.items() if r is not None and r.series.get("t")}
        if not shown:
            continue
        # load vs capacity
        n = len(shown)
        fig, axes = plt.subplots(n, 1, figsize=(9, 1.9 * n + 0.8), sharex=True, squeeze=False)
        for ax, (p, r) in zip(axes[:, 0], shown.items(), strict=True):
            t = np.asarray(r.series["t"]) / 60.0
            ax.step(t, r.series["peak_load"], where="post", color="0.6", lw=0.8, label="peak load")
            ax.step(t, r.series["load"], where="post", color="k", lw=1.2, label="load (mean)")
            ax.step(t, r.series["capacity"], where="post", color="tab:blue", lw=1.5,
                    label="provisioned capacity")  # fmt: skip
            ax.set_ylabel("req/s")
            ax.set_title(p, fontsize=9, loc="left")
        axes[0, 0].legend(fontsize=7, loc="upper right", ncol=3)
        axes[-1, 0].set_xlabel("time (min)")
        fig.suptitle(f"{ev.scenario} on {tn}: load vs provisioned capacity")
        fig.tight_layout()
        paths.append(_save(fig, out / f"capacity-{_safe(tn)}.png"))
        plt.close(fig)
        # cumulative dollars
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for p, r in shown.items():
            t = np.asarray(r.series["t"]) / 60.0
            ax.plot(t, np.cumsum(r.series["dollars"]), label=p, lw=1.4)
        ax.set_xlabel("time (min)")
        ax.set_ylabel("dollars spent (cumulative)")
        ax.set_title(f"{ev.scenario} on {tn}: dollars over time")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(_save(fig, out / f"dollars-{_safe(tn)}.png"))
        plt.close(fig)
        # latency CDF
        fig, ax = plt.subplots(figsize=(8, 4.5))
        exact = True
        for p in ev.policies:
            runs = [r for r in ev.runs if r.policy == p and r.trace == tn and not r.error]
            xs, ys, ok = _latency_cdf(runs)
            exact &= ok
            if len(xs):
                ax.plot(xs, ys, label=p, lw=1.3)
        if math.isfinite(ev.latency_bound_ms):
            ax.axvline(ev.latency_bound_ms, color="r", ls="--", lw=1, label="latency bound")
        ax.set_xscale("log")
        ax.set_xlabel("end-to-end latency (ms)")
        ax.set_ylabel("fraction of requests")
        how = "" if exact else " (approximate: from per-interval percentiles)"
        ax.set_title(f"{ev.scenario} on {tn}: latency CDF{how}", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(_save(fig, out / f"latency-cdf-{_safe(tn)}.png"))
        plt.close(fig)
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _latency_cdf(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Pooled CDF points: exact from samples, else a mixture of per-interval quantile curves
    (knots p50, p95, p99; weight = completed requests of the interval)."""
    samples = [r.latency_sample for r in runs if r.latency_sample is not None]
    if samples:
        allv = np.sort(np.concatenate(samples))
        return allv, np.arange(1, len(allv) + 1) / len(allv), True
    levels = np.array([0.0, 0.5, 0.95, 0.99, 1.0])
    qs = np.linspace(0.0, 1.0, 201)
    vals: list[np.ndarray] = []
    weights: list[float] = []
    for r in runs:
        comp = np.asarray(r.series.get("load", []), dtype=float)
        p99 = np.asarray(r.series.get("p99_ms", []), dtype=float)
        for w, x in zip(comp, p99, strict=False):
            if not (w > 0 and math.isfinite(x)):
                continue
            knots = np.array([0.0, 0.35 * x, 0.75 * x, x, 1.25 * x])
            vals.append(np.interp(qs, levels, knots))
            weights.append(float(w))
    if not vals:
        return np.array([]), np.array([]), False
    allv = np.concatenate(vals)
    allw = np.repeat(np.asarray(weights), len(qs))
    order = np.argsort(allv)
    cw = np.cumsum(allw[order])
    return allv[order], cw / cw[-1], False


def write_tensorboard(ev: Evaluation, folder: str | Path) -> Path | None:
    """Per-interval scalars (``eval/<trace>/...``), one TensorBoard run per policy (first seed),
    under ``folder``. None when no TensorBoard writer is installed."""
    writer_cls: Any = None
    try:
        from tensorboard.summary import Writer as writer_cls  # noqa: N813
    except Exception:
        try:
            from torch.utils.tensorboard import SummaryWriter as writer_cls  # noqa: N813
        except Exception:
            return None
    root = Path(folder)
    keys = ("load", "capacity", "dollars", "slo_attainment", "p99_ms", "accuracy",
            "reconfigurations", "decision_ms")  # fmt: skip
    for p in ev.policies:
        w = writer_cls(str(root / _safe(p)))
        for tn in ev.traces:
            r = next((r for r in ev.runs if r.policy == p and r.trace == tn and not r.error), None)
            if r is None:
                continue
            cum = 0.0
            for i in range(len(r.series.get("t", []))):
                cum += r.series["dollars"][i]
                step = int(r.series["t"][i])
                for k in keys:
                    v = r.series[k][i]
                    if math.isfinite(v):
                        w.add_scalar(f"eval/{tn}/{k}", float(v), step)
                w.add_scalar(f"eval/{tn}/dollars_cumulative", cum, step)
        w.flush()
        w.close()
    return root
