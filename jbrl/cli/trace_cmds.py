"""``jbrl trace generate / show / stats / import-azure``: seeded synthetic traces, their summary
and statistics, and traces from the Azure Functions 2019 invocation files."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from jbrl.cli.common import (
    JsonOpt,
    console,
    err_console,
    get_scenario,
    make_table,
    print_json,
    save_figure,
)
from jbrl.errors import InputError
from jbrl.scenario.azure import Selection, azure_trace
from jbrl.scenario.model import Scenario
from jbrl.scenario.trace_stats import trace_statistics
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


CapOpt = Annotated[
    bool,
    typer.Option(
        "--cap/--no-cap",
        help="With --scenario: cap the load at the largest rate the scenario's infrastructure "
        "sustains (`jbrl plan --max-rate`); --no-cap keeps the raw peak and warns when it is "
        "above.",
    ),
]


@trace_app.command("generate")
def trace_generate(
    kind: KindOpt,
    duration: DurationOpt,
    output: OutputOpt,
    seed: SeedOpt = 0,
    scenario: SourcesOpt = None,
    step: StepOpt = 60.0,
    param: ParamOpt = None,
    cap: CapOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Write a seeded synthetic trace of one kind (README "Load generators").

    With --scenario the trace never exceeds what the scenario sustains (the MILP's largest
    uniform scale of the nominal rates at the accuracy target, as `jbrl plan --max-rate`
    reports it); rows above are capped and the numbers printed (on stderr).
    """
    params = _parse_params(param)
    sources = get_scenario(scenario) if scenario is not None else None
    trace = generate_trace(kind, duration, seed, sources=sources, step_s=step, params=params)
    limit: dict[str, Any] = {}
    if sources is not None:
        limit = _sustainable(sources, trace, cap)
        if cap and limit.get("capped_rows"):
            trace = generate_trace(
                kind, duration, seed, sources=sources, step_s=step, params=params,
                max_scale=limit["cap_scale"],
            )  # fmt: skip
    try:
        trace.save(output)
    except OSError as exc:
        raise InputError(f"cannot write file: {exc}", file=str(output)) from None
    summary = trace.summary()
    summary["file"] = str(output)
    if limit:
        summary["sustainable"] = limit
    if json_out:
        print_json(summary)
    else:
        _print_trace_summary(summary)


def _sustainable(s: Scenario, trace: Trace, cap: bool) -> dict[str, Any]:
    """How the generated ``trace`` compares with the largest uniform scale of the nominal
    rates ``s`` sustains (``max_scale``; ``cap_scale`` is it rounded down to 4 decimals, the
    solver's gap); a note on stderr when the trace goes above (capped, or a warning)."""
    from jbrl.planning.milp import max_rate

    mr = max_rate(s)
    nominal = s.nominal_rates()
    scales = [_row_scale(r, trace.columns, nominal) for r in trace.values]
    peak = max(scales, default=0.0)
    out: dict[str, Any] = {"max_scale": mr.scale, "status": mr.status, "raw_peak_scale": peak}
    if mr.status == "infeasible":
        err_console.print(
            f"[yellow]warning:[/yellow] {s.name} sustains no load at accuracy {mr.accuracy:g}; "
            "the trace is not capped", highlight=False,
        )  # fmt: skip
        return out
    cap_scale = math.floor(mr.scale * 1e4) / 1e4
    rows = sum(1 for x in scales if x > cap_scale)
    out.update(cap_scale=cap_scale, capped_rows=rows if cap else 0, rows_above=rows)
    if rows:
        head = "capped" if cap else "[yellow]warning:[/yellow] left"
        tail = "; --no-cap keeps the raw peak" if cap else " (--cap caps them)"
        err_console.print(
            f"{head} {rows} of {len(trace)} rows above {cap_scale:g}x the nominal rates, the "
            f"largest load {s.name} sustains at accuracy {mr.accuracy:g} (jbrl plan --max-rate); "
            f"the raw peak is {peak:.4g}x{tail}",
            highlight=False,
        )
    return out


def _row_scale(row: Any, columns: Sequence[str], nominal: Mapping[str, float]) -> float:
    """The largest multiple of its nominal rate in one trace row."""
    return max(
        (float(v) / nominal[c] for v, c in zip(row, columns, strict=True) if nominal.get(c, 0) > 0),
        default=0.0,
    )


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
    s = get_scenario(scenario) if scenario is not None else None
    if s is not None:
        trace = trace.for_scenario(s)
    summary = trace.summary()
    if plot is not None:
        plot_trace(trace, plot, s)
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


def plot_trace(trace: Trace, path: Path, scenario: Scenario | None = None) -> None:
    """A step plot of every column of ``trace`` over minutes, with ``scenario``'s sustainable
    rates (`jbrl plan --max-rate`) when given (PNG at ``path``;
    :func:`jbrl.evaluation.plots.trace_figure`)."""
    import matplotlib.pyplot as plt

    from jbrl.evaluation.plots import trace_figure

    name = Path(trace.file).name if trace.file else "trace"
    limits = None
    if scenario is not None:
        from jbrl.planning.milp import max_rate

        mr = max_rate(scenario)
        limits = mr.rates if mr.status != "infeasible" else None
    title = f"trace {name}" + (f", sources of scenario {scenario.name}" if scenario else "")
    fig = trace_figure(trace, title, limits)
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)


@trace_app.command("stats")
def trace_stats(
    path: TracePathArg,
    scenario: CheckScenarioOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Statistics of a trace's total load at 1-minute resolution: mean, peak/mean, CV, lag-1
    autocorrelation, Hurst parameter, bursts; with several columns, how they move together."""
    trace = load_trace(path)
    if scenario is not None:
        trace = trace.for_scenario(get_scenario(scenario))
    stats = trace_statistics(trace)
    if json_out:
        print_json({"file": str(path), **stats})
        return
    t = make_table(("statistic", "value"), title=str(path), right=("value",))
    for key, value in stats.items():
        t.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(t)


FilesArg = Annotated[
    list[Path],
    typer.Argument(help="invocations_per_function_md.anon.dNN.csv files, one per day, in order."),
]
FunctionOpt = Annotated[
    list[str] | None,
    typer.Option("--function", help="HashFunction (or a unique prefix of >= 8 characters)."),
]
AppOpt = Annotated[
    list[str] | None,
    typer.Option("--app", help="HashApp: every function of the application (or a prefix)."),
]
SourceMapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--source",
        help="SOURCE=ID: this source follows its own function or app (needs --scenario).",
    ),
]
ScaleOpt = Annotated[
    str,
    typer.Option(
        "--scale",
        help="mean (mean load = nominal), peak (peak = nominal), mean=X, peak=X, or a number "
        "r (multiplier = invocations/s x r).",
    ),
]


@trace_app.command("import-azure")
def trace_import_azure(
    files: FilesArg,
    output: OutputOpt,
    function: FunctionOpt = None,
    app: AppOpt = None,
    source: SourceMapOpt = None,
    scale: ScaleOpt = "mean",
    scenario: SourcesOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Turn Azure Functions 2019 per-minute invocation counts into a trace (one row per minute,
    the selected functions and apps summed, day files concatenated)."""
    sc = get_scenario(scenario) if scenario is not None else None
    sources = _parse_sources(source) if source else None
    selection = None if sources else Selection(tuple(function or ()), tuple(app or ()))
    if selection is not None and not (selection.functions or selection.apps):
        raise InputError("give at least one --function or --app (or --source)", field="--function")
    trace = azure_trace(files, selection=selection, sources=sources, scale=scale, scenario=sc)
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


def _parse_sources(items: list[str]) -> dict[str, Selection]:
    """``["site-a=ID", ...]`` -> {source: Selection}; the ID names a function or an app
    (whichever has that hash); a source given twice sums both."""
    out: dict[str, Selection] = {}
    for item in items:
        name, sep, ident = item.partition("=")
        if not sep or not name.strip() or not ident.strip():
            raise InputError("must be SOURCE=ID", field="--source", value=item)
        prev = out.get(name.strip(), Selection())
        out[name.strip()] = Selection(either=(*prev.either, ident.strip()))
    return out
