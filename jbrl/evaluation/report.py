"""The evaluation table: rich (for the terminal) and Markdown (for reports).

One row per policy and trace and, with several traces, a bold summary row per policy; columns
are dollars per run, dollars per 1000 requests, SLO attainment (pooled, and the worst single run),
p99 latency, accuracy, reconfigurations, plan changes (Markdown only) and decision time.
"""

from __future__ import annotations

import math
from typing import Any

from jbrl.evaluation.aggregate import Evaluation, Row

#: (rich heading, Markdown heading) of every column, in order
COLUMNS = [
    ("policy", "policy"),
    ("trace", "trace"),
    ("$", "$"),
    ("$/1k req", "$/1k req"),
    ("SLO", "SLO"),
    ("worst", "worst"),
    ("p99 ms", "p99 ms"),
    ("acc", "accuracy"),
    ("reconf", "reconf"),
    ("changes", "changes"),
    ("decide", "decide ms (mean / max)"),
]
CAPTION = (
    "$: dollars per run (all: summed over traces); SLO: requests within the latency "
    "bound; reconf: model loads; decide: ms per decision, mean/max"
)


def render_table(ev: Evaluation, title: str | None = None) -> Any:
    """The side-by-side table (rich). With one trace the summary rows (equal to the trace's)
    and the trace column are left out; ``worst`` only appears when there is more than one run
    per policy."""
    from rich import box
    from rich.table import Table

    t = Table(title=title or _title(ev), box=box.SIMPLE_HEAD, pad_edge=False, caption=CAPTION)
    multi = len(ev.traces) > 1
    worst = multi or len(ev.seeds) > 1
    keep = [True, multi, True, True, True, worst, True, True, True, False, True]
    longest = {
        "policy": max((len(p) for p in ev.policies), default=6),
        "trace": max((len(n) for n in ev.traces), default=5),
    }
    for (name, _), k in zip(COLUMNS, keep, strict=True):
        if k:
            t.add_column(
                name,
                justify="left" if name in ("policy", "trace") else "right",
                no_wrap=name != "policy",
                overflow="fold",
                min_width=min(longest.get(name, 0), 34) or None,
            )
    for p in ev.policies:
        rows = [r for r in ev.rows if r.policy == p]
        rows += [r for r in ev.summary if r.policy == p] if multi else []
        for i, r in enumerate(rows):
            cells = [c for c, k in zip(_cells(r), keep, strict=True) if k]
            style = "bold" if r.trace == "all" else None
            t.add_row(*cells, style=style, end_section=multi and i == len(rows) - 1)
    return t


def _title(ev: Evaluation) -> str:
    lt = "scenario's load times" if ev.load_time_s is None else f"load time {ev.load_time_s:g} s"
    return (
        f"{ev.scenario}: {ev.simulator} simulator, {len(ev.seeds)} seed(s), "
        f"{ev.interval_s:g} s intervals, {lt}"
    )


def print_table(console: Any, table: Any) -> None:
    """Print ``table`` on ``console``, widening the console for it when the terminal is
    narrower than the table's minimum width (the lines then wrap, but no figure is cut)."""
    need = console.measure(table, options=console.options.update_width(10_000)).maximum
    width = console.width
    if need > width:
        console.width = need
    try:
        console.print(table)
    finally:
        console.width = width


def markdown_table(ev: Evaluation) -> str:
    """The same table in Markdown."""
    head = [md for _, md in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in ev.policies:
        for r in [r for r in ev.rows if r.policy == p] + [r for r in ev.summary if r.policy == p]:
            cells = _cells(r, error_text=True)
            if r.trace == "all":
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cells(r: Row, error_text: bool = False) -> list[str]:
    """The cells of row ``r``, one per :data:`COLUMNS` entry."""
    if r.errors == r.runs:
        why = (r.error or "")[:100] if error_text else "(see below)"
        return [r.policy, r.trace, "failed", "", "", "", "", "", "", "", why]
    return [
        r.policy + (f" ({r.errors} failed)" if r.errors else ""),
        r.trace,
        _num(r.dollars, ".3f"),
        _num(r.dollars_per_1k, ".4f"),
        _pct(r.slo_attainment),
        _pct(r.worst_attainment),
        _num(r.p99_ms, ".0f"),
        _num(r.accuracy, ".2f"),
        _num(r.reconfigurations, ".1f"),
        _num(r.plan_changes, ".1f"),
        f"{_num(r.decision_mean_ms, '.1f')}/{_num(r.decision_max_ms, '.0f')}",
    ]


def _num(x: float, spec: str) -> str:
    return "-" if not math.isfinite(x) else format(x, spec)


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:.2f}%"
