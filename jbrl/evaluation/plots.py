"""PNG plots of an evaluation, per trace: load vs provisioned capacity per policy, cumulative
dollars, and the latency CDF.

The time series show each policy's first seed; the CDF pools the seeds: exact from every
request's latency in the DES, approximate in the fluid model (a mixture of per-interval quantile
curves, :func:`latency_cdf`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from jbrl.evaluation.aggregate import Evaluation, RunRecord


def file_safe(name: str) -> str:
    """``name`` (a policy spec or trace name) as a file or folder name."""
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
        first = {p: ev.first_run(p, tn) for p in ev.policies}
        shown = {p: r for p, r in first.items() if r is not None and r.series.get("t")}
        if not shown:
            continue
        for kind, draw in (
            ("capacity", _plot_capacity),
            ("dollars", _plot_dollars),
            ("latency-cdf", _plot_latency_cdf),
        ):
            fig = draw(plt, ev, tn, shown)
            paths.append(_save(fig, out / f"{kind}-{file_safe(tn)}.png"))
            plt.close(fig)
    return paths


def _plot_capacity(plt: Any, ev: Evaluation, tn: str, shown: dict[str, RunRecord]) -> Any:
    """Load (mean and peak) against provisioned capacity, one panel per policy."""
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
    return fig


def _plot_dollars(plt: Any, ev: Evaluation, tn: str, shown: dict[str, RunRecord]) -> Any:
    """Cumulative dollars over time, one line per policy."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for p, r in shown.items():
        t = np.asarray(r.series["t"]) / 60.0
        ax.plot(t, np.cumsum(r.series["dollars"]), label=p, lw=1.4)
    ax.set_xlabel("time (min)")
    ax.set_ylabel("dollars spent (cumulative)")
    ax.set_title(f"{ev.scenario} on {tn}: dollars over time")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plot_latency_cdf(plt: Any, ev: Evaluation, tn: str, shown: dict[str, RunRecord]) -> Any:
    """The latency CDF of every policy (seeds pooled), with the SLO's latency bound."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    exact = True
    for p in ev.policies:
        xs, ys, ok = latency_cdf(ev.ok_runs(p, tn))
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
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


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
