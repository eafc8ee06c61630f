"""An evaluation's per-interval series as TensorBoard scalars (one run per policy), with a
custom-scalars layout that puts every policy on one chart.

Scalars are written as classic ``simple_value`` summaries (PyTorch's ``SummaryWriter``, the
writer stable-baselines3 and the controller use too), so scripts that read runs with
``EventAccumulator(path).Scalars(tag)`` see them; TensorBoard's own ``tensorboard.summary.Writer``
stores tensors, which ``EventAccumulator`` lists under ``tensors`` instead.

Layout (TensorBoard's *Custom Scalars* tab): one category per trace with the charts of
:data:`CHARTS`; each chart's tag regex matches the same tag in every policy's run, so a chart
draws one line per policy ($/hour, SLO attainment, load and capacity, p99 latency, cumulative
dollars).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from jbrl.evaluation.aggregate import Evaluation, RunRecord
from jbrl.evaluation.plots import file_safe

#: the series written per interval as they are (plus the derived :data:`DERIVED`)
SCALARS = (
    "load",
    "capacity",
    "dollars",
    "slo_attainment",
    "p99_ms",
    "accuracy",
    "reconfigurations",
    "decision_ms",
)
#: series derived per interval: $/hour over the interval, and dollars spent so far
DERIVED = ("dollars_per_hour", "dollars_cumulative")

#: the custom-scalars charts of each trace: title -> the series it shows for every policy
CHARTS = {
    "$/hour, all policies": "dollars_per_hour",
    "SLO attainment, all policies": "slo_attainment",
    "provisioned capacity (req/s), all policies": "capacity",
    "p99 latency (ms), all policies": "p99_ms",
    "dollars spent, all policies": "dollars_cumulative",
}


def write_tensorboard(ev: Evaluation, folder: str | Path) -> Path | None:
    """Per-interval scalars (``eval/<trace>/<series>``, stepped by simulated seconds), one
    TensorBoard run per policy (its first seed) under ``folder``, and the custom-scalars layout
    in ``folder`` itself. None when no TensorBoard writer is installed (the ``rl`` extra)."""
    writer_cls = _writer_class()
    if writer_cls is None:
        return None
    root = Path(folder)
    for p in ev.policies:
        w = writer_cls(str(root / file_safe(p)))
        for tn, trace in ev.traces.items():
            r = ev.first_run(p, tn)
            if r is not None:
                _write_run(w, tn, r, trace.duration)
        w.close()
    w = writer_cls(str(root))
    w.add_custom_scalars(layout(ev))
    w.close()
    return root


def layout(ev: Evaluation) -> dict[str, dict[str, list[Any]]]:
    """The custom-scalars layout: per trace, the :data:`CHARTS` as multiline charts whose tag
    regex (anchored) matches that series in every policy's run."""
    out: dict[str, dict[str, list[Any]]] = {}
    for tn in ev.traces:
        charts = {
            title: ["Multiline", [f"^{re.escape(tag(tn, key))}$"]] for title, key in CHARTS.items()
        }
        out[f"{ev.scenario} on {tn} ({ev.simulator})"] = charts
    return out


def tag(trace: str, series: str) -> str:
    """The scalar tag of ``series`` on ``trace``."""
    return f"eval/{trace}/{series}"


def _writer_class() -> Any:
    """PyTorch's ``SummaryWriter`` (classic scalars), or None without torch and tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter
    except Exception:
        return None


def _write_run(w: Any, tn: str, r: RunRecord, duration: float) -> None:
    """The series of run ``r`` on trace ``tn`` (of ``duration`` s), stepped by simulated
    seconds."""
    ts = r.series.get("t", [])
    cum = 0.0
    for i, t in enumerate(ts):
        step = int(t)
        for k in SCALARS:
            v = r.series[k][i]
            if math.isfinite(v):
                w.add_scalar(tag(tn, k), float(v), step)
        dollars = r.series["dollars"][i]
        cum += dollars
        length = (ts[i + 1] if i + 1 < len(ts) else duration) - t
        if length > 0:
            w.add_scalar(tag(tn, "dollars_per_hour"), dollars * 3600.0 / length, step)
        w.add_scalar(tag(tn, "dollars_cumulative"), cum, step)
