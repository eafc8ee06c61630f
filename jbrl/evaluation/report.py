"""The evaluation table: rich (for the terminal) and Markdown (for reports).

One row per policy and trace and, with several traces, a bold summary row per policy; columns
are dollars per run, dollars per 1000 requests, SLO attainment (pooled, and the worst single run),
p99 latency, accuracy, reconfigurations, plan changes (Markdown only), the SLO shield's
interventions (policies run behind it) and decision time.
"""

from __future__ import annotations

import math
from typing import Any

from jbrl import display
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
    ("shield", "shield"),
    ("decide", "decide ms (mean / max)"),
]
CAPTION = (
    "$: dollars per run (all: summed over traces); SLO: share of requests within the latency "
    "bound, pooled over runs; worst: SLO of the worst single run (trace and seed); acc: "
    "end-to-end accuracy; reconf: model loads per run; shield: plans the SLO shield replaced "
    "per run (- without it); decide: ms per decision, mean/max"
)


def render_table(ev: Evaluation, title: str | None = None) -> Any:
    """The side-by-side table (rich). With one trace the summary rows (equal to the trace's)
    and the trace column are left out; ``worst`` only appears when there is more than one run
    per policy. Cells too wide for a narrow terminal wrap (never cut, never "…")."""
    from rich import box
    from rich.table import Table

    t = Table(title=title or _title(ev), box=box.SIMPLE_HEAD, pad_edge=False, caption=CAPTION)
    multi = len(ev.traces) > 1
    worst = multi or len(ev.seeds) > 1
    shielded = any(math.isfinite(r.shield_interventions) for r in ev.rows)
    keep = [True, multi, True, True, True, worst, True, True, True, False, shielded, True]
    for (name, _), k in zip(COLUMNS, keep, strict=True):
        if k:
            t.add_column(
                name,
                justify="left" if name in ("policy", "trace") else "right",
                overflow="fold",
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
    """Print ``table`` on ``console`` at the console's width (cells wrap to fit)."""
    console.print(table)


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
        return [r.policy, r.trace, "failed", "", "", "", "", "", "", "", "", why]
    return [
        r.policy + (f" ({r.errors} failed)" if r.errors else ""),
        r.trace,
        display.dollars(r.dollars, 3),
        display.dollars(r.dollars_per_1k),
        display.pct(r.slo_attainment),
        display.pct(r.worst_attainment),
        display.ms(r.p99_ms),
        display.num(r.accuracy, ".2f"),
        display.num(r.reconfigurations, ".1f"),
        display.num(r.plan_changes, ".1f"),
        display.num(r.shield_interventions, ".1f"),
        f"{display.ms(r.decision_mean_ms, 1)}/{display.ms(r.decision_max_ms)}",
    ]
