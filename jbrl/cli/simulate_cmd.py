"""``jbrl simulate``: run a plan (or the milp-static policy) over a trace in a simulator."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from jbrl import display
from jbrl.cli.common import (
    JsonOpt,
    ScenarioOpt,
    console,
    err_console,
    get_scenario,
    make_table,
    print_json,
    save_figure,
)
from jbrl.errors import InfeasibleError, InputError, Param
from jbrl.planning.plan import Plan, load_plan
from jbrl.progress import ProgressBar
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace, load_trace
from jbrl.sim import SimConfig, SimResult, load_faults, make_simulator, rollout

_PROGRESS_MIN_INTERVALS = 200  # show a progress bar from this many intervals (or any DES run)


class SimKind(str, Enum):  # noqa: UP042 (StrEnum needs Python 3.11)
    fluid = "fluid"
    des = "des"


class ServiceKind(str, Enum):  # noqa: UP042
    lognormal = "lognormal"
    exponential = "exponential"
    deterministic = "deterministic"


TraceOpt = Annotated[Path, typer.Option("--trace", "-t", help="Trace CSV file.")]
PlanOpt = Annotated[Path | None, typer.Option("--plan", "-p", help="Plan JSON file.")]
PolicyOpt = Annotated[
    str | None,
    typer.Option(
        "--policy",
        help="'milp-static': one MILP plan for the trace's peak rates (instead of --plan).",
    ),
]
SimOpt = Annotated[SimKind, typer.Option("--sim", help="Simulator fidelity.")]
FaultsOpt = Annotated[Path | None, typer.Option("--faults", help="Fault schedule (YAML/JSON).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (DES).")]
IntervalOpt = Annotated[float, typer.Option("--interval", help="Seconds per reported interval.")]
DurationOpt = Annotated[
    float | None,
    typer.Option("--duration", help="Seconds to simulate (default: the trace's duration)."),
]
ServiceOpt = Annotated[
    ServiceKind, typer.Option("--service", help="Service-time distribution (same mean).")
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="Per-queue timeout in s (default: 10x the SLO bound)."),
]
RowsOpt = Annotated[
    int,
    typer.Option(
        "--rows", min=0, help="At most this many per-interval rows in the table (0: no table)."
    ),
]
PlotOpt = Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here.")]


def simulate(
    trace: TraceOpt,
    scenario: ScenarioOpt = "vqa",
    plan: PlanOpt = None,
    policy: PolicyOpt = None,
    sim: SimOpt = SimKind.fluid,
    faults: FaultsOpt = None,
    seed: SeedOpt = 0,
    interval: IntervalOpt = 60.0,
    duration: DurationOpt = None,
    service: ServiceOpt = ServiceKind.lognormal,
    timeout: TimeoutOpt = None,
    rows: RowsOpt = 40,
    plot: PlotOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a plan (or the milp-static policy) over a trace on the fluid or discrete-event
    simulator; print totals and the per-interval series."""
    if (plan is None) == (policy is None):
        raise InputError("give exactly one of --plan or --policy", field="--plan/--policy")
    s = get_scenario(scenario)
    tr = load_trace(trace, s)
    fault_sched = load_faults(faults, s) if faults is not None else None
    the_plan, design = _plan_to_run(s, tr, plan, policy)
    config = SimConfig(service=ServiceKind(service).value, timeout_s=timeout)
    simulator = make_simulator(SimKind(sim).value, config)
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise InputError(
            "must be a positive number of seconds", field=Param.DURATION, value=duration
        )
    end = duration if duration is not None else tr.duration
    if not (end and end > 0):
        raise InputError(
            "the trace has no duration: give --duration or a '# duration_s:' line",
            file=str(trace),
        )
    run = partial(
        rollout,
        simulator,
        s,
        tr,
        the_plan,
        interval,
        seed=seed,
        faults=fault_sched,
        duration=end,
        design_rates=design,
    )
    n_intervals = math.ceil(end / interval) if interval > 0 else 0
    show_bar = (
        not json_out
        and err_console.is_terminal
        and (sim == SimKind.des or n_intervals >= _PROGRESS_MIN_INTERVALS)
    )
    result = _run_with_bar(run, end) if show_bar else run()
    if plot is not None:
        plot_result(result, s, trace, plot)
    _report(result, trace, the_plan, plot, json_out, rows)


def _report(
    result: SimResult, trace: Path, plan: Plan, plot: Path | None, json_out: bool, rows: int
) -> None:
    """The JSON or the tables."""
    if json_out:
        out = result.to_dict()
        out["trace"] = str(trace)
        out["plan"] = plan.to_dict()
        if plot is not None:
            out["plot"] = str(plot)
        print_json(out)
        return
    _print_result(result, rows)
    if plot is not None:
        console.print(f"plot written to {plot}", highlight=False)


def _plan_to_run(
    s: Scenario, trace: Trace, plan: Path | None, policy: str | None
) -> tuple[Plan, dict[str, float] | None]:
    """The plan file's plan, or the policy's plan with the rates it was designed for."""
    if plan is not None:
        return load_plan(plan), None
    return _policy_plan(s, trace, str(policy))


def _run_with_bar(run: Callable[..., SimResult], end: float) -> SimResult:
    """``run(progress=...)`` under a progress bar of simulated seconds (stderr)."""
    with ProgressBar(True, end, label="simulating", unit="simulated s") as bar:
        return run(progress=lambda t, _total: bar.update(t))


def _policy_plan(s: Scenario, trace: Trace, policy: str) -> tuple[Plan, dict[str, float]]:
    """The milp-static plan: one MILP plan for the trace's peak rates."""
    if policy not in ("milp-static", "milp-static-peak"):
        raise InputError(
            "unknown policy (simulate supports 'milp-static'; others run in `jbrl evaluate`)",
            field="--policy",
            value=policy,
        )
    from jbrl.planning import get_planner

    peak = trace.peak()
    result = get_planner("milp").plan(s, rates=peak)
    if result.status == "infeasible":
        reason = result.reason or {}
        raise InfeasibleError(
            f"no plan for the trace's peak rates {peak}: {reason.get('message', 'infeasible')}",
            {"reason": reason, "peak_rates": peak},
        )
    return result.plan, peak


def _print_result(result: SimResult, max_rows: int) -> None:
    """The totals table and the per-interval table (at most ``max_rows`` rows)."""
    tot = result.totals
    lat = tot.latency_ms
    console.print(
        f"[bold]{result.simulator}[/bold] on {result.scenario}: {tot.duration:g} s in "
        f"{len(result.intervals)} intervals of {result.interval_s:g} s (seed {result.seed})",
        highlight=False,
    )
    t = make_table(("metric", "value"), title="Totals", right=("value",))
    drops = ", ".join(f"{k} {v:.0f}" for k, v in tot.dropped.items() if v)
    for name, value in (
        ("arrivals", f"{tot.arrivals:.0f}"),
        ("completed", f"{tot.completed:.0f}"),
        ("within SLO", f"{tot.within_slo:.0f}"),
        ("dropped", f"{tot.dropped_total:.0f}" + (f" ({drops})" if drops else "")),
        ("in flight at end", f"{tot.in_flight:.0f}"),
        ("throughput req/s", f"{tot.throughput:.3f}"),
        ("SLO attainment", display.pct(tot.slo_attainment)),
        ("latency p50/p95/p99 ms", "/".join(display.ms(lat[k]) for k in ("p50", "p95", "p99"))),
        ("compute $", display.dollars(tot.compute_dollars)),
        ("communication $", display.dollars(tot.communication_dollars)),
        (
            "total $ ($/hour)",
            f"{display.dollars(tot.dollars)} ({display.dollars(tot.dollars_per_hour)})",
        ),
        ("model loads", f"{tot.reconfigurations}"),
    ):
        t.add_row(name, value)
    console.print(t)
    if max_rows > 0:
        console.print(_interval_table(result, max_rows))


def _interval_table(result: SimResult, max_rows: int) -> Table:
    """Every ``step``-th interval, so that at most ``max_rows`` rows are shown."""
    ivs = result.intervals
    step = max(1, math.ceil(len(ivs) / max(1, max_rows)))
    cols = ("t (s)", "arr", "done", "drop", "inflt", "SLO", "p50ms", "p99ms", "$", "loads")
    s = make_table(
        cols,
        title="Per interval" + (f" (every {step}th of {len(ivs)})" if step > 1 else ""),
        caption="arr/done/drop: requests arrived, completed, dropped; inflt: in flight at the "
        "end; SLO: share within the latency bound; $: dollars spent; loads: model loads started",
        right=cols,
    )
    for m in ivs[::step]:
        s.add_row(
            f"{m.t_start:g}",
            f"{m.arrivals:.0f}",
            f"{m.completed:.0f}",
            f"{m.dropped_total:.0f}",
            f"{m.in_flight:.0f}",
            display.pct(m.slo_attainment, 1),
            display.ms(m.latency_ms["p50"]),
            display.ms(m.latency_ms["p99"]),
            display.dollars(m.dollars),
            str(len(m.reconfigured)),
        )
    return s


def plot_result(result: SimResult, scenario: Scenario, trace: Path, path: Path) -> None:
    """Rates, SLO attainment, latency percentiles and $/hour per interval (PNG at ``path``;
    :func:`jbrl.evaluation.plots.simulation_figure`)."""
    import matplotlib.pyplot as plt

    from jbrl.evaluation.plots import simulation_figure

    fig = simulation_figure(result, scenario, trace.name)
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)
