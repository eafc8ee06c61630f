"""``jbrl evaluate``: policies side by side on the same simulator and traces."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jbrl.cli.common import (
    DEFAULT_SCENARIO_NAME,
    JsonOpt,
    ScenarioOpt,
    console,
    err_console,
    get_scenario,
    print_json,
)
from jbrl.errors import InputError

if TYPE_CHECKING:
    from jbrl.evaluation.aggregate import Evaluation
    from jbrl.evaluation.executors import RunExecutor

DEFAULT_POLICIES = (
    "ppo,milp-reactive:headroom=0.2,milp-hysteresis,milp-oracle,milp-static,jellybean,autoscaler"
)

TracesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--trace",
        "-t",
        help="Trace CSV file or embedded evaluation trace name (repeatable; default: every "
        "embedded trace: diurnal_bursts, flash_crowd, step).",
    ),
]
PoliciesOpt = Annotated[
    str,
    typer.Option(
        "--policies",
        "-p",
        help="Comma-separated policy specs, parameters after colons "
        "(milp-reactive:headroom=0.2). 'ppo' alone is the scenario's shipped policy.",
    ),
]
SimOpt = Annotated[str, typer.Option("--sim", help="Simulator: fluid (fast) or des.")]
SeedsOpt = Annotated[int, typer.Option("--seeds", help="Seeds per trace (0, 1, ...).")]
IntervalOpt = Annotated[
    float, typer.Option("--interval", help="Control interval (s of simulated time).")
]
LoadTimeOpt = Annotated[
    float | None,
    typer.Option("--load-time", help="Force every model load time to this many seconds."),
]
DurationOpt = Annotated[
    float | None, typer.Option("--duration", help="Cut every trace to this many seconds.")
]
ProcessesOpt = Annotated[
    int, typer.Option("--processes", "-j", help="Parallel local worker processes (spawn).")
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Run every (policy, trace, seed) as a Ray task. Alone (or 'local'): a Ray started "
        "for this run on 127.0.0.1; 'auto', 'ray://HOST:10001' or HOST:6379: an existing "
        "cluster (every node needs jbrl installed).",
    ),
]
RunDirOpt = Annotated[
    Path,
    typer.Option("--run-dir", help="Where a local Ray (--ray) keeps its session files."),
]
JsonOutOpt = Annotated[
    Path | None,
    typer.Option("--json-out", help="Write every figure (and the per-interval series) here."),
]
StrayArgs = Annotated[list[str] | None, typer.Argument(hidden=True)]
PlotsOpt = Annotated[Path | None, typer.Option("--plots", help="Write PNG plots into this folder.")]
TensorboardOpt = Annotated[
    Path | None,
    typer.Option("--tensorboard", help="Write per-interval TensorBoard scalars here."),
]
ShieldOpt = Annotated[
    bool,
    typer.Option(
        "--shield/--no-shield",
        help="Also run every policy behind the SLO shield (its spec with :shield=on), so the "
        "table shows each policy with and without it, and the shield's interventions per run.",
    ),
]
ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show a progress bar (stderr).")
]


def evaluate(
    scenario: ScenarioOpt = DEFAULT_SCENARIO_NAME,
    trace: TracesOpt = None,
    policies: PoliciesOpt = DEFAULT_POLICIES,
    sim: SimOpt = "fluid",
    seeds: SeedsOpt = 1,
    interval: IntervalOpt = 60.0,
    load_time: LoadTimeOpt = None,
    duration: DurationOpt = None,
    processes: ProcessesOpt = 1,
    ray: RayOpt = None,
    run_dir: RunDirOpt = Path("runs/evaluate"),
    json_out: JsonOpt = False,
    json_file: JsonOutOpt = None,
    plots: PlotsOpt = None,
    tensorboard: TensorboardOpt = None,
    shield: ShieldOpt = False,
    progress: ProgressOpt = True,
    stray: StrayArgs = None,
) -> None:
    """Compare control policies side by side on traces (table, JSON, plots).

    Runs every policy on every trace and seed in the simulator and prints one table: dollars
    (total and per 1000 requests), SLO attainment, p99 latency, accuracy, reconfigurations and
    decision time, a row per policy and trace and a summary row per policy.

    A policy that fails while running is reported in its row; an unknown policy or a bad
    parameter exits with 2. --json prints every figure as JSON on stdout instead of the table;
    --json-out PATH writes it to a file. With --ray, the runs are Ray tasks (same figures as
    without).
    """
    from jbrl.evaluation.policies import parse_policies
    from jbrl.evaluation.runner import evaluate as run_evaluation
    from jbrl.evaluation.traces import default_traces, resolve_trace

    _refuse_stray(stray, json_out)
    if seeds < 1:
        raise InputError("must be >= 1", field="--seeds", value=seeds)
    if processes < 1:
        raise InputError("must be >= 1", field="--processes", value=processes)
    if ray is not None and processes > 1:
        raise InputError(
            "give --ray or --processes, not both", field="--processes", value=processes
        )
    s = get_scenario(scenario)
    specs = parse_policies(policies)
    if shield:
        specs = with_shielded(specs)
    traces = dict(resolve_trace(t, s) for t in trace) if trace else default_traces(s)
    if not traces:
        raise InputError("no trace given and no embedded evaluation trace found", field="--trace")
    with _executor(ray, run_dir) as executor:
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
            executor=executor,
            progress=progress,
        )
    _outputs(ev, json_out, json_file, plots, tensorboard)


@contextmanager
def _executor(ray: str | None, run_dir: Path) -> Iterator[RunExecutor | None]:
    """Ray tasks with ``--ray`` (saying where Ray runs and on how many nodes the runs ran);
    None otherwise (this process, or ``--processes``)."""
    if ray is None:
        yield None
        return
    from jbrl.evaluation.executors import RayTasks

    with RayTasks(ray, run_dir=run_dir) as tasks:
        err_console.print(f"running on {tasks.cluster.describe()}", highlight=False, soft_wrap=True)
        yield tasks
    err_console.print(
        f"{sum(tasks.nodes.values())} runs as Ray tasks on {len(tasks.nodes)} node(s)",
        highlight=False,
    )


def _refuse_stray(stray: list[str] | None, json_out: bool) -> None:
    """Positional arguments are not taken; after --json one is the old ``--json PATH``."""
    if not stray:
        return
    if json_out:
        raise InputError(
            "--json is a flag now (JSON on stdout); write the figures to a file with "
            f"--json-out {stray[0]}",
            field="--json",
            value=stray[0],
        )
    raise InputError("unexpected argument (every input is an option)", value=stray[0])


def _outputs(
    ev: Evaluation,
    json_out: bool,
    json_file: Path | None,
    plots: Path | None,
    tensorboard: Path | None,
) -> None:
    """The table (or JSON on stdout), then the files asked for. With --json, stdout holds the
    JSON alone: what the files say goes to stderr."""
    say = err_console.print if json_out else console.print
    if json_out:
        print_json(ev.to_dict())
    else:
        show_evaluation(ev)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        write_evaluation_json(ev, json_file)
        say(f"figures written to {json_file}", highlight=False)
    if plots is not None:
        from jbrl.evaluation.plots import write_plots

        paths = write_plots(ev, plots)
        say(f"{len(paths)} plots written to {plots}/", highlight=False)
    if tensorboard is not None:
        _write_tensorboard(ev, tensorboard, say)


def show_evaluation(ev: Evaluation) -> None:
    """The evaluation table, then one line per policy that failed (with its error)."""
    from jbrl.evaluation.report import print_table, render_table

    print_table(console, render_table(ev))
    for policy, error in sorted({(r.policy, r.error) for r in ev.runs if r.error}):
        console.print(f"[yellow]{policy} failed:[/yellow] {error}", highlight=False)


def write_evaluation_json(ev: Evaluation, path: Path) -> None:
    """Every figure of ``ev`` (with the per-interval series) as JSON."""
    path.write_text(json.dumps(ev.to_dict(), indent=1) + "\n", "utf-8")


def _write_tensorboard(ev: Evaluation, folder: Path, say: Callable[..., None]) -> None:
    from jbrl.evaluation.tensorboard import write_tensorboard

    where = write_tensorboard(ev, folder)
    if where is None:
        say("no TensorBoard writer installed (pip install 'jbrl[rl]'): skipped")
    else:
        say(f"TensorBoard scalars in {where} (tensorboard --logdir {where})", highlight=False)


def with_shielded(specs: list[str]) -> list[str]:
    """``specs`` followed by each one behind the SLO shield (``:shield=on``), for specs that do
    not already say whether they want it."""
    from jbrl.agents.policy import parse_policy_spec
    from jbrl.agents.shield import SHIELD_PARAM

    extra = [f"{s}:{SHIELD_PARAM}=on" for s in specs if SHIELD_PARAM not in parse_policy_spec(s)[1]]
    return specs + [s for s in extra if s not in specs]
