"""An evaluation's per-interval series as TensorBoard scalars (one run per policy)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jbrl.evaluation.aggregate import Evaluation, RunRecord
from jbrl.evaluation.plots import file_safe

#: the series written per interval (plus ``dollars_cumulative``)
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


def write_tensorboard(ev: Evaluation, folder: str | Path) -> Path | None:
    """Per-interval scalars (``eval/<trace>/...``), one TensorBoard run per policy (first seed),
    under ``folder``. None when no TensorBoard writer is installed."""
    writer_cls = _writer_class()
    if writer_cls is None:
        return None
    root = Path(folder)
    for p in ev.policies:
        w = writer_cls(str(root / file_safe(p)))
        for tn in ev.traces:
            r = ev.first_run(p, tn)
            if r is not None:
                _write_run(w, tn, r)
        w.flush()
        w.close()
    return root


def _writer_class() -> Any:
    """TensorBoard's own writer, else PyTorch's, else None."""
    try:
        from tensorboard.summary import Writer

        return Writer
    except Exception:
        try:
            from torch.utils.tensorboard import SummaryWriter

            return SummaryWriter
        except Exception:
            return None


def _write_run(w: Any, tn: str, r: RunRecord) -> None:
    """The series of run ``r`` on trace ``tn``, stepped by simulated seconds."""
    cum = 0.0
    for i in range(len(r.series.get("t", []))):
        cum += r.series["dollars"][i]
        step = int(r.series["t"][i])
        for k in SCALARS:
            v = r.series[k][i]
            if math.isfinite(v):
                w.add_scalar(f"eval/{tn}/{k}", float(v), step)
        w.add_scalar(f"eval/{tn}/dollars_cumulative", cum, step)
