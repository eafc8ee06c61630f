"""``jbrl evaluate``: policies side by side on the same simulator and traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jbrl.cli.common import DEFAULT_SCENARIO_NAME, ScenarioOpt, console, get_scenario

DEFAULT_POLICIES = (
    "ppo,milp-reactive:headroom=0.2,milp-hysteresis,milp-oracle,milp-static,jellybean,autoscaler"
)


def evaluate(
    scenario: ScenarioOpt = DEFAULT_SCENARIO_NAME,
    trace: Annotated[
        list[str] | None,
        typer.Option(
            "--trace",
            "-t",
            help="Trace CSV file or embedded evaluation trace name (repeatable; default: every "
            "embedded trace: diurnal_bursts, flash_crowd, step).",
        ),
    ] = None,
    policies: Annotated[
        str,
        typer.Option(
            "--policies",
            "-p",
            help="Comma-separated policy specs, parameters after colons "
            "(milp-reactive:headroom=0.2). 'ppo' alone is the scenario's shipped policy.",
        ),
    ] = DEFAULT_POLICIES,
    sim: Annotated[str, typer.Option("--sim", help="Simulator: fluid (fast) or des.")] = "fluid",
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per trace (0, 1, ...).")] = 1,
    interval: Annotated[
        float, typer.Option("--interval", help="Control interval (s of simulated time).")
    ] = 60.0,
    load_time: Annotated[
        float | None,
        typer.Option("--load-time", help="Force every model load time to this many seconds."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Cut every trace to this many seconds.")
    ] = None,
    processes: Annotated[
        int, typer.Option("--processes", "-j", help="Parallel worker processes.")
    ] = 1,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write every figure (and the per-interval series) here."),
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Write PNG plots into this folder.")
    ] = None,
    tensorboard: Annotated[
        Path | None,
        typer.Option("--tensorboard", help="Write per-interval TensorBoard scalars here."),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar (stderr).")
    ] = True,
) -> None:
    """Compare control policies side by side on traces (table, JSON, plots).

    Runs every policy on every trace and seed in the simulator and prints one table: dollars
    (total and per 1000 requests), SLO attainment, p99 latency, accuracy, reconfigurations and
    decision time, a row per policy and trace and a summary row per policy.

    A policy that fails while running is reported in its row; an unknown policy or a bad
    parameter exits with 2.
    """
    from jbrl.errors import InputError
    from jbrl.evaluation.plots import write_plots
    from jbrl.evaluation.policies import parse_policies
    from jbrl.evaluation.report import print_table, render_table
    from jbrl.evaluation.runner import evaluate as run_evaluation
    from jbrl.evaluation.tensorboard import write_tensorboard
    from jbrl.evaluation.traces import default_traces, resolve_trace

    if seeds < 1:
        raise InputError("must be >= 1", field="--seeds", value=seeds)
    if processes < 1:
        raise InputError("must be >= 1", field="--processes", value=processes)
    s = get_scenario(scenario)
    specs = parse_policies(policies)
    traces = dict(resolve_trace(t, s) for t in trace) if trace else default_traces(s)
    if not traces:
        raise InputError("no trace given and no embedded evaluation trace found", field="--trace")
    ev = run_evaluation(
        s,
        traces,
        specs,
        sim=sim,
        seeds=seeds,
        interval=interval,
        load_time=load_time,
        duration=duration,
        processes=processes,
        progress=progress,
    )
    print_table(console, render_table(ev))
    failed = sorted({(r.policy, r.error) for r in ev.runs if r.error})
    for policy, error in failed:
        console.print(f"[yellow]{policy} failed:[/yellow] {error}", highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(ev.to_dict(), indent=1) + "\n", "utf-8")
        console.print(f"figures written to {json_out}")
    if plots is not None:
        paths = write_plots(ev, plots)
        console.print(f"{len(paths)} plots written to {plots}/")
    if tensorboard is not None:
        where = write_tensorboard(ev, tensorboard)
        if where is None:
            console.print("no TensorBoard writer installed (pip install 'jbrl[rl]'): skipped")
        else:
            console.print(f"TensorBoard scalars in {where} (tensorboard --logdir {where})")
