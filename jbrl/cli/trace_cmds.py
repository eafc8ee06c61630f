"""``jbrl trace generate`` and ``jbrl trace show``: seeded synthetic traces and their summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from jbrl.cli.common import JsonOpt, console, get_scenario, make_table, print_json, save_figure
from jbrl.errors import InputError
from jbrl.scenario.traces import TRACE_KINDS, Trace, generate_trace, load_trace

trace_app = typer.Typer(
    help="Generate and inspect load traces (CSV: time_s, then req/s per source or 'scale').",
    no_args_is_help=True,
)

KindOpt = Annotated[str, typer.Option("--kind", "-k", help=f"One of: {', '.join(TRACE_KINDS)}.")]
DurationOpt = Annotated[float, typer.Option("--duration", "-d", help="Length in seconds.")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="CSV file to write.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
SourcesOpt = Annotated[
    str | None,
    typer.Option(
        "--scenario",
        "-s",
        help="Write one column per source of this scenario (nominal rate x multiplier); "
        "without it the trace has a single 'scale' column.",
    ),
]
StepOpt = Annotated[float, typer.Option("--step", help="Seconds between rows.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param", "-p", help="KEY=VALUE parameter of the kind (repeatable), e.g. burst=3."
    ),
]
TracePathArg = Annotated[Path, typer.Argument(help="Trace CSV file.")]
CheckScenarioOpt = Annotated[
    str | None,
    typer.Option("--scenario", "-s", help="Check the trace against this scenario's sources."),
]
PlotOpt = Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here.")]


@trace_app.command("generate")
def trace_generate(
    kind: KindOpt,
    duration: DurationOpt,
    output: OutputOpt,
    seed: SeedOpt = 0,
    scenario: SourcesOpt = None,
    step: StepOpt = 60.0,
    param: ParamOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a seeded synthetic trace: constant, step, diurnal, bursty or random_walk."""
    params = _parse_params(param)
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


def _parse_params(param: list[str] | None) -> dict[str, float]:
    """``["burst=3", ...]`` -> ``{"burst": 3.0, ...}``."""
    params: dict[str, float] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            params[key.strip()] = float(value)
        except ValueError:
            raise InputError("must be KEY=NUMBER", field="--param", value=item) from None
    return params


@trace_app.command("show")
def trace_show(
    path: TracePathArg,
    scenario: CheckScenarioOpt = None,
    plot: PlotOpt = None,
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
    t = make_table(("column", "min", "mean", "max"), right=("min", "mean", "max"))
    for name, c in summary["columns"].items():
        t.add_row(name, f"{c['min']:.4g}", f"{c['mean']:.4g}", f"{c['max']:.4g}")
    console.print(t)
    if "plot" in summary:
        console.print(f"plot written to {summary['plot']}", highlight=False)


def plot_trace(trace: Trace, path: Path) -> None:
    """A step plot of every column of ``trace`` (PNG at ``path``)."""
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
    save_figure(fig, path)
    plt.close(fig)
