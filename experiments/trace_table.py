"""The statistics table of the production-shaped load generators (README, "Load generators").

For every kind (``onoff``, ``weekly``, ``phased``, ``flash_crowd``) and, for contrast, the
smooth ``diurnal`` and ``bursty``, this generates 14 days at one row per minute (the length and
resolution of the Azure Functions 2019 trace) with the kind's default parameters, three
sources of nominal rate 1 (``phased`` and the cross-source columns need several), for seeds
0..4, and computes :func:`jbrl.scenario.trace_stats.trace_statistics` of the total load. The
medians over the seeds go into ``experiments/results/traces.md`` beside the published
characterisations each kind imitates (cited there).

    .venv/bin/python experiments/trace_table.py       # ~1 min
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from jbrl.scenario.trace_stats import trace_statistics
from jbrl.scenario.traces import generate_trace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "traces"
DAYS = 14
SEEDS = range(5)
SOURCES = {"s1": 1.0, "s2": 1.0, "s3": 1.0}
KINDS = ["onoff", "weekly", "phased", "flash_crowd", "diurnal", "bursty"]
PARAMS: dict[str, dict[str, float]] = {"diurnal": {"period_s": 86400.0}}
"""Non-default parameters (diurnal's default period is the whole trace)."""

PUBLISHED = {
    "onoff": (
        "Azure Functions 2019 (many applications, heavy-tailed activity)",
        "Invocation rates span 8 orders of magnitude across functions and 81 % of "
        "applications are invoked at most once per minute on average (Shahrad et al., USENIX "
        "ATC '20): sparse, heavy-tailed per-client activity. Superposed on/off sources with "
        "Pareto periods of tail index a give Hurst H = (3 - a)/2 = 0.75 at a = 1.5 (Willinger, "
        "Taqqu, Sherman, Wilson, IEEE/ACM ToN 5(1), 1997), the mechanism behind the "
        "self-similar LAN traffic of Leland et al. (IEEE/ACM ToN 2(1), 1994).",
    ),
    "weekly": (
        "Azure Functions 2019, whole platform (14 days, per minute)",
        "Invocations per hour of the whole platform show a daily cycle and a weekly pattern "
        "(Shahrad et al., ATC '20; AzurePublicDataset trace-analysis notebook, Figure 4, "
        "invocations per hour relative to the mean, 15-28 July 2019); Huawei's production "
        "FaaS traces show strong periodicity for many functions and on an aggregate level "
        "(Joosen et al., SoCC '23). No single peak/mean figure is published for them.",
    ),
    "phased": (
        "geographically spread sites (several data centres / time zones)",
        "Huawei's internal trace spans multiple data centres and 200 functions whose daily "
        "cycles differ (Joosen et al., SoCC '23); per-function rates and shapes differ widely "
        "(Shahrad et al., ATC '20). No published statistic of cross-site correlation; the "
        "phase spread (8 h by default) is a design choice (time zones).",
    ),
    "flash_crowd": (
        "flash crowds / workload spikes",
        "Spikes 'vary significantly in many important aspects such as steepness, magnitude, "
        "duration, and spatial locality' (Bodik, Fox, Franklin, Jordan, Patterson, SoCC '10, "
        "five spikes analysed): random amplitude, rise and decay per crowd.",
    ),
    "diurnal": ("(smooth synthetic shape, for contrast)", "-"),
    "bursty": ("(two-level Markov bursts, for contrast)", "-"),
}
COLUMNS = [
    ("peak_to_mean", "peak/mean", "{:.2f}"),
    ("cv", "CV (1 min)", "{:.3f}"),
    ("lag1", "lag-1 AC", "{:.3f}"),
    ("hurst", "Hurst H", "{:.2f}"),
    ("bursts_per_day", "bursts/day", "{:.1f}"),
    ("burst_len_median", "burst min (median)", "{:.1f}"),
    ("burst_len_p90", "burst min (p90)", "{:.1f}"),
    ("burst_len_max", "burst min (max)", "{:.0f}"),
    ("mean_pairwise_corr", "source corr", "{:.2f}"),
]


def kind_stats(kind: str) -> dict[str, Any]:
    """Median over the seeds of every statistic of ``kind``'s total load."""
    runs = []
    for seed in SEEDS:
        tr = generate_trace(
            kind, DAYS * 86400.0, seed, sources=SOURCES, params=PARAMS.get(kind, {})
        )
        st = trace_statistics(tr)
        st["bursts_per_day"] = st["bursts"] / DAYS
        st["mean_multiplier"] = st["mean"] / len(SOURCES)
        runs.append(st)
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    return {k: statistics.median(float(r[k]) for r in runs) for k in keys}


def table(stats: dict[str, dict[str, Any]]) -> list[str]:
    """The statistics as markdown table lines."""
    head = "| kind | mean | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for kind, st in stats.items():
        cells = [c[2].format(st[c[0]]) if c[0] in st else "-" for c in COLUMNS]
        lines.append(f"| `{kind}` | {st['mean_multiplier']:.3f} | " + " | ".join(cells) + " |")
    return lines


def markdown(stats: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Load generators: statistics",
        "",
        "Written by `experiments/trace_table.py`: 14 days at one row per minute, three sources "
        "of nominal rate 1, default parameters (`diurnal`: a 24 h period), medians over seeds "
        "0-4, statistics of the total load (`jbrl trace stats`; definitions in "
        "`jbrl/scenario/trace_stats.py`). Bursts: runs of minutes above 1.5 x the centred "
        "61-minute rolling median. Mean: the mean multiplier of one source. The Hurst estimate "
        "(aggregated variance) is meaningful for the stationary kinds (`onoff`, `bursty`); a "
        "daily cycle pushes it towards 1.",
        "",
        *table(stats),
    ]
    lines += ["", "## What each kind imitates (published characterisations)", ""]
    lines += ["| kind | imitates | published |", "|---|---|---|"]
    for kind in stats:
        what, published = PUBLISHED[kind]
        lines.append(f"| `{kind}` | {what} | {published} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    stats = {kind: kind_stats(kind) for kind in KINDS}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(stats, indent=1) + "\n")
    text = markdown(stats)
    OUT.with_suffix(".md").write_text(text)
    readme = ROOT / "README.md"
    write_section(readme, "<!-- trace-table -->", "<!-- /trace-table -->", "\n".join(table(stats)))
    print(text)


if __name__ == "__main__":
    main()
