"""``jbrl trace generate/show`` and ``jbrl simulate``."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from jbrl.cli.common import JsonOpt, console, err_console, get_scenario, print_json
from jbrl.errors import InfeasibleError, InputError
from jbrl.planning.plan import Plan, load_plan
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import TRACE_KINDS, Trace, generate_trace, load_trace
from jbrl.sim import SimConfig, SimResult, load_faults, make_simulator, rollout

trace_app = typer.Typer(
    help="Generate and inspect load traces (CSV: time_s, then req/s per source or 'scale').",
    no_args_is_help=True,
)

_PROGRESS_MIN_INTERVALS = 200  # show a progress bar from this many intervals (or any DES run)


class SimKind(str, Enum):  # noqa: UP042 (StrEnum needs Python 3.11)
    fluid = "fluid"
    des = "des"


class ServiceKind(str, Enum):  # noqa: UP042
    lognormal = "lognormal"
    exponential = "exponential"
    deterministic = "deterministic"


# --------------------------------------------------------------------------- trace


@trace_app.command("generate")
def trace_generate(
    kind: Annotated[str, typer.Option("--kind", "-k", help=f"One of: {', '.join(TRACE_KINDS)}.")],
    duration: Annotated[float, typer.Option("--duration", "-d", help="Length in seconds.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario",
            "-s",
            help="Write one column per source of this scenario (nominal rate x multiplier); "
            "without it the trace has a single 'scale' column.",
        ),
    ] = None,
    step: Annotated[float, typer.Option("--step", help="Seconds between rows.")] = 60.0,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="KEY=VALUE parameter of the kind (repeatable), e.g. burst=3."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a seeded synthetic trace: constant, step, diurnal, bursty or random_walk."""
    params: dict[str, float] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            params[key.strip()] = float(value)
        except ValueError:
            raise InputError("must be KEY=NUMBER", field="--param", value=item) from None
    sources = get_scenario(scenario) if scenario is not None else None
    trace = generate_trace(kind, duration, seed, sources=sources, step_s=step, params=params)
    try:
        trace.save(output)
    except OSError as exc:
        raise InputError(f"cannot write file: {exc}", file=str(output)) from None
    summary = trace.summary()
    summary["file"] = str(output)
    if json_out:
        print_json(summary)
    else:
        _print_trace_summary(summary)


@trace_app.command("show")
def trace_show(
    path: Annotated[Path, typer.Argument(help="Trace CSV file.")],
    scenario: Annotated[
        str | None,
        typer.Option("--scenario", "-s", help="Check the trace against this scenario's sources."),
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Summarise a trace (rows, duration, min/mean/max per column) and optionally plot it."""
    trace = load_trace(path)
    if scenario is not None:
        trace = trace.for_scenario(get_scenario(scenario))
    summary = trace.summary()
    if plot is not None:
        plot_trace(trace, plot)
        summary["plot"] = str(plot)
    if json_out:
        print_json(summary)
    else:
        _print_trace_summary(summary)


def _print_trace_summary(summary: dict[str, Any]) -> None:
    console.print(
        f"[bold]{summary['file']}[/bold]: {summary['rows']} rows, {summary['duration_s']:g} s",
        highlight=False,
    )
    t = Table()
    for col in ("column", "min", "mean", "max"):
        t.add_column(col)
    for name, c in summary["columns"].items():
        t.add_row(name, f"{c['min']:.4g}", f"{c['mean']:.4g}", f"{c['max']:.4g}")
    console.print(t)
    if "plot" in summary:
        console.print(f"plot written to {summary['plot']}", highlight=False)


def plot_trace(trace: Trace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    end = max(trace.duration, float(trace.times[-1]))
    xs = [*trace.times.tolist(), end]
    for i, col in enumerate(trace.columns):
        ys = [*trace.values[:, i].tolist(), float(trace.values[-1, i])]
        ax.step(xs, ys, where="post", label=col)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("multiplier" if trace.is_scale else "req/s")
    ax.set_title(trace.file or "trace")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _save(fig: Any, path: Path) -> None:
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise InputError(f"cannot write file: {exc}", file=str(path)) from None


# --------------------------------------------------------------------------- simulate


def simulate(
    trace: Annotated[Path, typer.Option("--trace", "-t", help="Trace CSV file.")],
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            "-s",
            help="Embedded scenario name (e.g. vqa), a scenario YAML file, or a JellyBean "
            "optimizer-inputs directory.",
        ),
    ] = "vqa",
    plan: Annotated[Path | None, typer.Option("--plan", "-p", help="Plan JSON file.")] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="'milp-static': one MILP plan for the trace's peak rates (instead of --plan).",
        ),
    ] = None,
    sim: Annotated[SimKind, typer.Option("--sim", help="Simulator fidelity.")] = SimKind.fluid,
    faults: Annotated[
        Path | None, typer.Option("--faults", help="Fault schedule (YAML/JSON).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (DES).")] = 0,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds per reported interval.")
    ] = 60.0,
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Seconds to simulate (default: the trace's duration)."),
    ] = None,
    service: Annotated[
        ServiceKind,
        typer.Option("--service", help="Service-time distribution (same mean)."),
    ] = ServiceKind.lognormal,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Per-queue timeout in s (default: 10x the SLO bound)."),
    ] = None,
    rows: Annotated[
        int, typer.Option("--rows", help="At most this many per-interval rows in the table.")
    ] = 40,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a plan (or the milp-static policy) over a trace on the fluid or discrete-event
    simulator; print totals and the per-interval series."""
    if (plan is None) == (policy is None):
        raise InputError("give exactly one of --plan or --policy", field="--plan/--policy")
    s = get_scenario(scenario)
    tr = load_trace(trace, s)
    fault_sched = load_faults(faults, s) if faults is not None else None
    design: dict[str, float] | None = None
    if plan is not None:
        the_plan = load_plan(plan)
    else:
        the_plan, design = _policy_plan(s, tr, str(policy))
    config = SimConfig(service=ServiceKind(service).value, timeout_s=timeout)  # type: ignore[arg-type]
    simulator = make_simulator(SimKind(sim).value, config)
    end = duration if duration is not None else tr.duration
    if not (end and end > 0):
        raise InputError(
            "the trace has no duration: give --duration or a '# duration_s:' line",
            file=str(trace),
        )
    n_intervals = math.ceil(end / interval) if interval > 0 else 0
    show_bar = (
        not json_out
        and err_console.is_terminal
        and (sim == SimKind.des or n_intervals >= _PROGRESS_MIN_INTERVALS)
    )
    if show_bar:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("simulating"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("sim", total=end)
            result = rollout(
                simulator,
                s,
                tr,
                the_plan,
                interval,
                seed=seed,
                faults=fault_sched,
                duration=end,
                design_rates=design,
                progress=lambda t, _total: bar.update(task, completed=t),
            )
    else:
        result = rollout(
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
    if plot is not None:
        plot_result(result, plot)
    if json_out:
        out = result.to_dict()
        out["trace"] = str(trace)
        out["plan"] = the_plan.to_dict()
        if plot is not None:
            out["plot"] = str(plot)
        print_json(out)
        return
    _print_result(result, rows)
    if plot is not None:
        console.print(f"plot written to {plot}", highlight=False)


def _policy_plan(s: Scenario, trace: Trace, policy: str) -> tuple[Plan, dict[str, float]]:
    if policy not in ("milp-static", "milp-static-peak"):
        raise InputError(
            "unknown policy (simulate supports 'milp-static'; others run in `jbrl evaluate`)",
            field="--policy",
            value=policy,
        )
    try:
        from jbrl.planning import get_planner
    except ImportError as exc:  # pragma: no cover - the agents package ships with jbrl
        raise InputError(
            f"the MILP planner is not available ({exc}); pass --plan instead",
            field="--policy",
            value=policy,
        ) from None
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
    tot = result.totals
    lat = tot.latency_ms
    console.print(
        f"[bold]{result.simulator}[/bold] on {result.scenario}: {tot.duration:g} s in "
        f"{len(result.intervals)} intervals of {result.interval_s:g} s (seed {result.seed})",
        highlight=False,
    )
    t = Table(title="Totals")
    t.add_column("metric")
    t.add_column("value", justify="right")
    drops = ", ".join(f"{k} {v:.0f}" for k, v in tot.dropped.items() if v)
    for name, value in (
        ("arrivals", f"{tot.arrivals:.0f}"),
        ("completed", f"{tot.completed:.0f}"),
        ("within SLO", f"{tot.within_slo:.0f}"),
        ("dropped", f"{tot.dropped_total:.0f}" + (f" ({drops})" if drops else "")),
        ("in flight at end", f"{tot.in_flight:.0f}"),
        ("throughput req/s", f"{tot.throughput:.3f}"),
        ("SLO attainment", _pct(tot.slo_attainment)),
        ("latency p50/p95/p99 ms", "/".join(_ms(lat[k]) for k in ("p50", "p95", "p99"))),
        ("compute $", f"{tot.compute_dollars:.4f}"),
        ("communication $", f"{tot.communication_dollars:.4f}"),
        ("total $ ($/hour)", f"{tot.dollars:.4f} ({tot.dollars_per_hour:.4f})"),
        ("reconfigurations", f"{tot.reconfigurations}"),
    ):
        t.add_row(name, value)
    console.print(t)
    ivs = result.intervals
    step = max(1, math.ceil(len(ivs) / max(1, max_rows)))
    s = Table(title="Per interval" + (f" (every {step}th of {len(ivs)})" if step > 1 else ""))
    for col in ("t (s)", "arr", "done", "drop", "inflt", "SLO", "p50ms", "p99ms", "$", "load"):
        s.add_column(col, justify="right")
    for m in ivs[::step]:
        s.add_row(
            f"{m.t_start:g}",
            f"{m.arrivals:.0f}",
            f"{m.completed:.0f}",
            f"{m.dropped_total:.0f}",
            f"{m.in_flight:.0f}",
            _pct(m.slo_attainment, 1),
            _ms(m.latency_ms["p50"]),
            _ms(m.latency_ms["p99"]),
            f"{m.dollars:.4f}",
            str(len(m.reconfigured)),
        )
    console.print(s)


def _pct(x: float, digits: int = 2) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def _ms(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.0f}"


def plot_result(result: SimResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ivs = result.intervals
    t = [m.t_start + m.duration / 2 for m in ivs]
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    ax = axes[0]
    ax.plot(t, [m.arrivals / m.duration for m in ivs], label="arrivals/s")
    ax.plot(t, [m.throughput for m in ivs], label="completed/s")
    ax.plot(t, [m.dropped_total / m.duration for m in ivs], label="dropped/s")
    ax.set_ylabel("req/s")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(t, [m.slo_attainment for m in ivs])
    ax.set_ylabel("SLO attainment")
    ax.set_ylim(-0.02, 1.02)
    ax = axes[2]
    for key in ("p50", "p95", "p99"):
        ax.plot(t, [m.latency_ms[key] for m in ivs], label=key)
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax = axes[3]
    ax.plot(t, [m.dollars * 3600.0 / m.duration for m in ivs], label="total")
    ax.plot(t, [m.communication_dollars * 3600.0 / m.duration for m in ivs], label="communication")
    ax.set_ylabel("$/hour")
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=8)
    for a in axes:
        a.grid(alpha=0.3)
    fig.suptitle(f"{result.simulator} simulation of {result.scenario}")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
