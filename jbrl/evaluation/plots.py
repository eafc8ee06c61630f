"""Every PNG plot of jbrl, drawn one way.

* an evaluation, per trace (:func:`write_plots`): load vs provisioned capacity per policy with
  model-load downtime shaded, per-interval SLO attainment against the target, cumulative
  dollars, and the latency CDF against the SLO's bound and target;
* one simulation run (:func:`simulation_figure`, ``jbrl simulate --plot``): arrivals and
  completions, SLO attainment, latency percentiles, $/hour;
* a trace (:func:`trace_figure`, ``jbrl trace show --plot``).

Conventions: time in minutes; quantities that compare (req/s, $, $/hour, attainment) on
shared y-axes that start at 0; the SLO's latency bound and attainment target drawn wherever
latency or attainment is shown; legends outside the data; plain tick labels (``200``, never
``2×10^2``); titles naming the scenario, the trace and the simulator.

The evaluation's time series show each policy's first seed; the CDF pools the seeds: exact from
every request's latency in the DES, approximate in the fluid model (a mixture of per-interval
quantile curves, :func:`latency_cdf`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jbrl.evaluation.aggregate import Evaluation, RunRecord

if TYPE_CHECKING:
    from jbrl.scenario.model import Scenario
    from jbrl.scenario.traces import Trace
    from jbrl.sim.rollout import SimResult

LOADING_COLOR = "tab:orange"
BOUND_COLOR = "black"  # not in the line colour cycle: never mistaken for a policy
LEGEND_FONT = 8


def file_safe(name: str) -> str:
    """``name`` (a policy spec or trace name) as a file or folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------- axes helpers


def _tick_label(v: float, _pos: Any = None) -> str:
    """A plain tick label: ``200``, ``1,500``, ``0.25`` (never ``2×10^2``)."""
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def plain_ticks(axis: Any, log: bool = False) -> None:
    """Plain labels on ``axis`` (an x or y axis); a log axis gets ticks at 1, 2 and 5 of each
    decade (at 1 only past three decades), all labelled plainly, and no minor labels. Call it
    after plotting (it reads the axis's range)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if log:
        lo, hi = sorted(axis.get_view_interval())
        decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
        subs = (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(_tick_label))


def minutes_axis(ax: Any) -> None:
    """Label ``ax``'s x axis (data in minutes) with plain ticks."""
    ax.set_xlabel("time (min)")
    plain_ticks(ax.xaxis)


def percent_axis(axis: Any) -> None:
    """Show fractions on ``axis`` as percentages."""
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def legend_outside(ax: Any, **kw: Any) -> None:
    """``ax``'s legend to the right of its data, outside the axes."""
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=LEGEND_FONT, frameon=False, **kw
    )


def shade_loading(ax: Any, t_min: Sequence[float] | np.ndarray, loading_s: Sequence[float]) -> bool:
    """Shade ``[t, t + load time]`` wherever a model load began (``t`` in minutes, load time
    in seconds) and mark each start with a triangle at the top (a load of a few seconds is
    thinner than a pixel on a two-hour plot); True when anything was drawn."""
    starts = []
    for t, s in zip(t_min, loading_s, strict=False):
        if s > 0 and math.isfinite(s):
            ax.axvspan(t, t + s / 60.0, color=LOADING_COLOR, alpha=0.3, lw=0)
            starts.append(t)
    if starts:
        ax.scatter(starts, [0.96] * len(starts), marker="v", s=18, color=LOADING_COLOR,
                   transform=ax.get_xaxis_transform(), zorder=3, clip_on=False)  # fmt: skip
    return bool(starts)


def _title(ev: Evaluation, tn: str, what: str) -> str:
    return f"{what}\nscenario {ev.scenario}, trace {tn}, {ev.simulator} simulator"


def _pct(x: Any) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.2f} %"


# --------------------------------------------------------------------------- evaluation


def write_plots(ev: Evaluation, folder: str | Path) -> list[Path]:
    """PNG plots per trace: ``capacity-``, ``attainment-``, ``dollars-`` and ``latency-cdf-
    <trace>.png`` (:func:`evaluation_figures`)."""
    plt = _pyplot()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for tn in ev.traces:
        for kind, fig in evaluation_figures(ev, tn).items():
            path = out / f"{kind}-{file_safe(tn)}.png"
            fig.savefig(path, dpi=110)
            paths.append(path)
            plt.close(fig)
    return paths


def evaluation_figures(ev: Evaluation, tn: str) -> dict[str, Any]:
    """The figures of trace ``tn`` by kind (module docstring; none when no policy ran on it):
    the first seed's run is drawn for the time series; the CDF pools the seeds."""
    plt = _pyplot()
    first = {p: ev.first_run(p, tn) for p in ev.policies}
    shown = {p: r for p, r in first.items() if r is not None and r.series.get("t")}
    if not shown:
        return {}
    return {
        "capacity": _plot_capacity(plt, ev, tn, shown),
        "attainment": _plot_attainment(plt, ev, tn, shown),
        "dollars": _plot_dollars(plt, ev, tn, shown),
        "latency-cdf": _plot_latency_cdf(plt, ev, tn, shown),
    }


def _plot_capacity(plt: Any, ev: Evaluation, tn: str, shown: dict[str, RunRecord]) -> Any:
    """Load (interval mean and peak) against provisioned capacity, one panel per policy on one
    y scale from 0, model-load downtime shaded; each panel names the run's $, attainment and
    model loads."""
    n = len(shown)
    fig, axes = plt.subplots(
        n, 1, figsize=(9, 1.7 * n + 1.6), sharex=True, sharey=True, squeeze=False,
        layout="constrained",
    )  # fmt: skip
    loaded = False
    top = 0.0
    for ax, (p, r) in zip(axes[:, 0], shown.items(), strict=True):
        t = _edges(ev, tn, r)
        ax.stairs(r.series["peak_load"], t, baseline=None, color="0.6", lw=3.5, alpha=0.5)
        ax.stairs(r.series["load"], t, baseline=None, color="k", lw=1.2)
        ax.stairs(r.series["capacity"], t, baseline=None, color="tab:blue", lw=1.6)
        loaded |= shade_loading(ax, t[:-1], r.series.get("loading_s", []))
        top = max(top, *(max(r.series[k], default=0.0) for k in ("peak_load", "capacity")))
        ax.set_title(_run_caption(p, r), fontsize=9, loc="left")
        ax.set_ylabel("req/s")
        plain_ticks(ax.yaxis)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylim(0, 1.08 * top if top > 0 else 1.0)  # shared: every panel
    minutes_axis(axes[-1, 0])
    fig.legend(handles=_capacity_handles(loaded), loc="outside lower center", ncol=4,
               fontsize=LEGEND_FONT, frameon=False)  # fmt: skip
    fig.suptitle(_title(ev, tn, "load vs provisioned capacity"), fontsize=10)
    return fig


def _edges(ev: Evaluation, tn: str, r: RunRecord) -> np.ndarray:
    """The run's interval boundaries in minutes: every start, then the trace's end."""
    t = list(r.series["t"])
    last = t[-1] + ev.interval_s
    trace = ev.traces.get(tn)
    if trace is not None and t[-1] < trace.duration < last:
        last = trace.duration
    return np.asarray([*t, last]) / 60.0


def _run_caption(policy: str, r: RunRecord) -> str:
    """``policy: 3.12 $, 97.69 % within SLO, 15 model loads`` of run ``r``."""
    tot = r.totals
    return (
        f"{policy}: {tot.get('dollars', math.nan):.2f} $, {_pct(tot.get('slo_attainment'))} "
        f"within SLO, {tot.get('reconfigurations', 0)} model loads"
    )


def _capacity_handles(loaded: bool) -> list[Any]:
    """The capacity plot's legend entries (model loading only when a load happened)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Line2D([], [], color="0.6", lw=3.5, alpha=0.5, label="peak load in interval"),
        Line2D([], [], color="k", lw=1.2, label="load (interval mean)"),
        Line2D([], [], color="tab:blue", lw=1.6, label="provisioned capacity"),
    ]
    if loaded:
        handles.append(
            Patch(color=LOADING_COLOR, alpha=0.5, label="model loading (\u25bc: loads begin)")
        )
    return handles


def _plot_attainment(plt: Any, ev: Evaluation, tn: str, shown: dict[str, RunRecord]) -> Any:
    """Per-interval SLO attainment of every policy (0 to 100 %) with the target."""
    fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
    for p, r in shown.items():
        ax.stairs(r.series["slo_attainment"], _edges(ev, tn, r), baseline=None, label=p, lw=1.3)
    if math.isfinite(ev.attainment_target):
        ax.axhline(ev.attainment_target, color=BOUND_COLOR, ls="--", lw=1,
                   label=f"target {100 * ev.attainment_target:g} %")  # fmt: skip
    ax.set_ylim(0, 1.02)
    percent_axis(ax.yaxis)
    ax.set_ylabel("requests within the latency bound")
    minutes_axis(ax)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.set_title(_title(ev, tn, "SLO attainment per interval"), fontsize=10)
    return fig


def _plot_dollars(plt: Any, ev: Evaluation, tn: str, shown: dict[str, RunRecord]) -> Any:
    """Cumulative dollars over time, one line per policy, from 0."""
    fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
    for p, r in shown.items():
        spent = np.concatenate([[0.0], np.cumsum(r.series["dollars"])])
        ax.plot(_edges(ev, tn, r), spent, label=p, lw=1.4)  # at each interval's end
    minutes_axis(ax)
    ax.set_ylabel("dollars spent (cumulative)")
    ax.set_ylim(bottom=0)
    plain_ticks(ax.yaxis)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.set_title(_title(ev, tn, "dollars over time"), fontsize=10)
    return fig


def _plot_latency_cdf(plt: Any, ev: Evaluation, tn: str, shown: dict[str, RunRecord]) -> Any:
    """The latency CDF of every policy (seeds pooled), with the SLO's bound and target."""
    fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
    exact = True
    for p in ev.policies:
        xs, ys, ok = latency_cdf(ev.ok_runs(p, tn))
        exact &= ok
        if len(xs):
            ax.plot(xs, ys, label=p, lw=1.3)
    if math.isfinite(ev.latency_bound_ms):
        ax.axvline(ev.latency_bound_ms, color=BOUND_COLOR, ls="--", lw=1,
                   label=f"latency bound {ev.latency_bound_ms:g} ms")  # fmt: skip
    if math.isfinite(ev.attainment_target):
        ax.axhline(ev.attainment_target, color=BOUND_COLOR, ls=":", lw=1,
                   label=f"attainment target {100 * ev.attainment_target:g} %")  # fmt: skip
    ax.set_xscale("log")
    plain_ticks(ax.xaxis, log=True)
    ax.set_ylim(0, 1.02)
    percent_axis(ax.yaxis)
    ax.set_xlabel("end-to-end latency (ms)")
    ax.set_ylabel("requests finished within")
    how = "" if exact else " (approximate: from per-interval percentiles)"
    ax.grid(alpha=0.3, which="both")
    legend_outside(ax)
    ax.set_title(_title(ev, tn, f"latency CDF{how}"), fontsize=10)
    return fig


def latency_cdf(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Pooled CDF points ``(latency ms, fraction, exact)``: exact from the runs' latency
    samples (DES), else a mixture of per-interval quantile curves (knots p50, p95, p99 from each
    interval's p99; weight = the interval's load)."""
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


# --------------------------------------------------------------------------- one run, a trace


def simulation_figure(result: SimResult, scenario: Scenario, trace_name: str) -> Any:
    """``jbrl simulate --plot``: arrivals, completions and drops; SLO attainment with the
    target; latency percentiles with the bound; $/hour. Minutes on a shared x axis."""
    plt = _pyplot()
    ivs = result.intervals
    t = np.array([m.t_start for m in ivs] + [ivs[-1].t_end if ivs else 0.0]) / 60.0
    fig, axes = plt.subplots(4, 1, figsize=(9, 9.5), sharex=True, layout="constrained")
    _sim_rates(axes[0], t, ivs)
    _sim_attainment(axes[1], t, ivs, scenario.slo.attainment)
    _sim_latency(axes[2], t, ivs, scenario.slo.latency_ms)
    _sim_dollars(axes[3], t, ivs)
    for a in axes:
        a.grid(alpha=0.3)
        legend_outside(a)
    minutes_axis(axes[-1])
    fig.suptitle(
        f"scenario {result.scenario}, trace {trace_name}, {result.simulator} simulator "
        f"(seed {result.seed})",
        fontsize=10,
    )
    return fig


def _steps(ax: Any, t: np.ndarray, ys: Sequence[float], **kw: Any) -> None:
    """A step line over the intervals ``t[i]..t[i+1]`` (minutes)."""
    ys = list(ys)
    ax.stairs(ys, t, baseline=None, **kw)


def _sim_rates(ax: Any, t: np.ndarray, ivs: Sequence[Any]) -> None:
    _steps(ax, t, [m.arrivals / m.duration for m in ivs], lw=4, color="0.75", label="arrivals/s")
    _steps(ax, t, [m.throughput for m in ivs], lw=1.3, color="tab:blue", label="completed/s")
    _steps(ax, t, [m.dropped_total / m.duration for m in ivs], lw=1.3, color="tab:red",
           label="dropped/s")  # fmt: skip
    ax.set_ylabel("req/s")
    ax.set_ylim(bottom=0)
    plain_ticks(ax.yaxis)


def _sim_attainment(ax: Any, t: np.ndarray, ivs: Sequence[Any], target: float) -> None:
    _steps(ax, t, [m.slo_attainment for m in ivs], lw=1.3, color="tab:blue",
           label="within the bound")  # fmt: skip
    ax.axhline(target, color=BOUND_COLOR, ls="--", lw=1, label=f"target {100 * target:g} %")
    ax.set_ylabel("SLO attainment")
    ax.set_ylim(0, 1.02)
    percent_axis(ax.yaxis)


def _sim_latency(ax: Any, t: np.ndarray, ivs: Sequence[Any], bound_ms: float | None) -> None:
    for key in ("p50", "p95", "p99"):
        _steps(ax, t, [m.latency_ms[key] for m in ivs], lw=1.3, label=key)
    if bound_ms is not None and math.isfinite(bound_ms):
        ax.axhline(bound_ms, color=BOUND_COLOR, ls="--", lw=1, label=f"bound {bound_ms:g} ms")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    plain_ticks(ax.yaxis, log=True)


def _sim_dollars(ax: Any, t: np.ndarray, ivs: Sequence[Any]) -> None:
    _steps(ax, t, [m.dollars_per_hour for m in ivs], lw=1.3, label="total")
    _steps(ax, t, [m.communication_dollars * 3600.0 / m.duration for m in ivs], lw=1.3,
           label="communication")  # fmt: skip
    ax.set_ylabel("$/hour")
    ax.set_ylim(bottom=0)
    plain_ticks(ax.yaxis)


def trace_figure(trace: Trace, title: str, limits: Mapping[str, float] | None = None) -> Any:
    """``jbrl trace show --plot``: every column of ``trace`` as steps over minutes, from 0;
    equal columns are drawn once and named together; ``limits`` (per column, e.g. the
    scenario's sustainable rates) as dashed lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
    end = max(trace.duration, float(trace.times[-1]))
    edges = np.array([*trace.times.tolist(), end]) / 60.0
    groups: dict[bytes, list[int]] = {}
    for i in range(len(trace.columns)):
        groups.setdefault(trace.values[:, i].tobytes(), []).append(i)
    for idx in groups.values():
        label = " = ".join(trace.columns[i] for i in idx)
        line = ax.stairs(trace.values[:, idx[0]], edges, baseline=None, label=label, lw=1.3)
        for i in idx:
            lim = (limits or {}).get(trace.columns[i])
            if lim is not None and i == idx[0]:
                ax.axhline(lim, color=line.get_edgecolor(), ls="--", lw=1,
                           label=f"{label}: sustainable, plan --max-rate ({lim:.4g})")  # fmt: skip
    minutes_axis(ax)
    ax.set_ylabel("multiplier of nominal" if trace.is_scale else "req/s")
    ax.set_ylim(bottom=0)
    plain_ticks(ax.yaxis)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.set_title(title, fontsize=10)
    return fig
