"""``jbrl demo``: the main job on the embedded default scenario.

1. Shows the scenario, then plans it at nominal load with the exact MILP, JellyBean's heuristic
   and the cloud-only baseline, prints them side by side (cost, accuracy, gap to the optimum) and
   writes each plan as JSON into the output folder, where ``jbrl cost`` can check it.
2. Runs the shipped PPO policy (when the scenario has one) and the baselines (MILP-reactive,
   MILP-hysteresis, MILP-oracle, MILP-static-peak, JellyBean, Ray Serve's autoscaler) on a held-out
   default trace in the simulator, prints the evaluation table, and writes the plots
   (``plots/``), every figure (``evaluation.json``) and a TensorBoard log (``tensorboard/``, one
   run per policy) into the output folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from jbrl import display
from jbrl.cli.common import (
    DEFAULT_SCENARIO_NAME,
    ScenarioOpt,
    console,
    get_scenario,
    make_table,
)
from jbrl.cli.evaluate_cmd import show_evaluation, write_evaluation_json
from jbrl.cli.scenario_cmds import show
from jbrl.errors import InfeasibleError
from jbrl.scenario.model import Scenario
from jbrl.scenario.traces import Trace

DEMO_SOLVERS = ("milp", "jellybean", "cloud-only")
DEMO_BASELINES = (
    "milp-reactive:headroom=0.2",
    "milp-hysteresis",
    "milp-oracle",
    "milp-static",
    "jellybean",
    "autoscaler",
)
DEMO_TRACE = "diurnal_bursts"

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the plans, plots and logs.")]
TraceOpt = Annotated[
    str,
    typer.Option("--trace", "-t", help="Trace for the policies (file or embedded name)."),
]
SimOpt = Annotated[
    str | None,
    typer.Option("--sim", help="Simulator: des or fluid (default: the scenario's demo setting)."),
]
IntervalOpt = Annotated[
    float | None,
    typer.Option(
        "--interval",
        help="Decision interval, s of simulated time (default: the scenario's demo setting).",
    ),
]
PoliciesOpt = Annotated[
    str | None,
    typer.Option(
        "--policies",
        "-p",
        help="Policies to run (default: the shipped PPO policy, if any, and the baselines).",
    ),
]
DurationOpt = Annotated[
    float | None,
    typer.Option(
        "--duration",
        help="Cut the trace to this many seconds (default: the scenario's demo setting, "
        "else the whole trace).",
    ),
]
AdaptOpt = Annotated[
    bool,
    typer.Option("--adapt/--plans-only", help="Also run the policies on the trace."),
]


def demo(
    scenario: ScenarioOpt = DEFAULT_SCENARIO_NAME,
    out: OutOpt = Path("runs/demo"),
    trace: TraceOpt = DEMO_TRACE,
    sim: SimOpt = None,
    policies: PoliciesOpt = None,
    duration: DurationOpt = None,
    adapt: AdaptOpt = True,
    interval: IntervalOpt = None,
) -> None:
    """Main job: plan the default scenario, then run PPO and the baselines on a trace.

    Shows the scenario, plans it with MILP, JellyBean and cloud-only, then runs the shipped PPO
    policy (if any) and the baselines on a held-out trace: table, plots and a TensorBoard log
    in the output folder. The simulator and decision interval are the scenario's ``demo:``
    settings unless given (60 s in the DES for the small scenarios; the fleet asks for the fluid
    simulator, 300 s and the trace's first half hour).
    """
    s = get_scenario(scenario)
    run = _prepare(s, trace, sim, policies, duration, interval) if adapt else None
    show(scenario)
    out.mkdir(parents=True, exist_ok=True)
    _plans(s, scenario, out)
    if run is not None:
        _adapt(s, out, run)


def _plans(s: Scenario, scenario: str, out: Path) -> None:
    from jbrl.planning import get_planner

    rows: list[tuple[str, dict[str, Any] | None, str | None]] = []  # solver, plan, why not
    for name in DEMO_SOLVERS:
        with console.status(f"planning with {name} ..."):
            try:
                result = get_planner(name).plan(s)
            except InfeasibleError as exc:
                rows.append((name, None, exc.reason))
                continue
        data = result.to_dict()
        (out / f"plan-{name}.json").write_text(json.dumps(data, indent=2) + "\n", "utf-8")
        rows.append((name, data, None))
    best = min((d["total_cost"] for _, d, _ in rows if d), default=None)
    cols = ("solver", "status", "compute", "comm", "total", "vs best", "acc", "workers", "solve s")
    t = make_table(
        cols,
        title=f"Plans for {s.name} at nominal load (accuracy target {s.slo.min_accuracy:g})",
        caption="compute, comm (communication), total: $/hour; vs best: total over the "
        "cheapest plan's; acc: end-to-end accuracy; solve s: planner wall time",
        right=cols[2:],
    )
    for name, d, reason in rows:
        if d is None:
            t.add_row(name, "infeasible", "", "", "", "", "", "", reason or "")
            continue
        nworkers = sum(len(v) for v in d["worker_assignment"].values())
        t.add_row(
            name,
            d["status"],
            display.dollars(d["compute_cost"]),
            display.dollars(d["communication_cost"]),
            display.dollars(d["total_cost"]),
            f"{d['total_cost'] / best - 1:+.1%}" if best else "",
            f"{d['accuracy']:g}" if d.get("accuracy") is not None else "-",
            str(nworkers),
            f"{d['solve_time_s']:.3f}",
        )
    console.print(t)
    console.print(
        f"plans written to {out}/ (check one with: jbrl cost --scenario {scenario} "
        f"--plan {out}/plan-milp.json)"
    )


@dataclass(frozen=True)
class _Run:
    """What the policies' run will use, checked before any planning."""

    name: str
    trace: Trace
    specs: list[str]
    sim: str
    step: float
    duration: float | None
    note: str | None  # why the shipped PPO policy is not among the policies


def _prepare(
    s: Scenario,
    trace: str,
    sim: str | None,
    policies: str | None,
    duration: float | None,
    interval: float | None,
) -> _Run:
    """Resolve and check the run's flags and the scenario's demo settings (a bad flag exits
    2 at once, not after the planners ran)."""
    from jbrl.evaluation.policies import parse_policies, probe_policy
    from jbrl.evaluation.runner import check_evaluation
    from jbrl.evaluation.traces import resolve_trace

    name, tr = resolve_trace(trace, s)
    note = None
    if policies is not None:
        specs = parse_policies(policies)
    else:
        specs = list(DEMO_BASELINES)
        note = probe_policy("ppo", s)
        if note is None:
            specs.insert(0, "ppo")
    run = _Run(
        name=name,
        trace=tr,
        specs=specs,
        sim=sim or s.demo.sim,
        step=s.demo.interval_s if interval is None else interval,
        duration=s.demo.duration_s if duration is None else duration,
        note=note,
    )
    check_evaluation(s, {name: tr}, specs, run.sim, 1, run.step, run.duration)
    return run


def _adapt(s: Scenario, out: Path, run: _Run) -> None:
    from jbrl.evaluation.plots import write_plots
    from jbrl.evaluation.runner import evaluate
    from jbrl.evaluation.tensorboard import write_tensorboard

    if run.note is not None:
        console.print(
            f"[yellow]note:[/yellow] no PPO policy to run ({run.note}); showing the baselines only.",
            highlight=False,
        )
    name, specs, sim, step = run.name, run.specs, run.sim, run.step
    console.rule(f"Adapting to changing load: trace {name!r}, {sim} simulator")
    console.print(
        f"Each policy decides the plan every {step:g} s of simulated time from what the "
        "simulator reports; milp-oracle and milp-static read the true trace (references, not "
        "deployable).",
        highlight=False,
    )
    if s.demo.reason:
        console.print(f"The scenario's demo settings: {s.demo.reason}", highlight=False)
    procs = max(1, min(len(specs), os.cpu_count() or 1))
    ev = evaluate(
        s,
        {name: run.trace},
        specs,
        sim=sim,
        seeds=1,
        duration=run.duration,
        interval=step,
        processes=procs,
        progress=True,
    )
    show_evaluation(ev)
    write_evaluation_json(ev, out / "evaluation.json")
    plots = write_plots(ev, out / "plots")
    tb = write_tensorboard(ev, out / "tensorboard")
    console.print(f"{len(plots)} plots in {out / 'plots'}/, every figure in {out}/evaluation.json")
    if tb is None:
        console.print("no TensorBoard writer installed (pip install 'jbrl[rl]'): log skipped")
    else:
        console.print(f"TensorBoard log: tensorboard --logdir {tb}")
