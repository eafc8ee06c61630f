"""The SLO shield's figures (issue 13, item 2): policies with and without the shield.

Runs each policy twice on one scenario and trace in the discrete-event simulator - as given and
behind the SLO shield (``:shield=on``, margin 1.1: :mod:`jbrl.planning.shield`) - and writes the
table, attainment, dollars, interventions and the shield's own time per decision (mean / max)
to ``experiments/results/shield.md`` (a section per scenario and trace) and every figure to
``shield_<scenario>_<trace>.json`` beside it, with the machine's state.

    taskset -c 0 python experiments/shield_figures.py                  # vqa, step.csv, 1 seed
    python experiments/shield_figures.py --policies milp-reactive,autoscaler --seeds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402

from jbrl.cli.evaluate_cmd import with_shielded  # noqa: E402
from jbrl.evaluation.report import markdown_table  # noqa: E402
from jbrl.evaluation.runner import evaluate  # noqa: E402
from jbrl.evaluation.traces import resolve_trace  # noqa: E402
from jbrl.scenario import load_scenario  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="vqa")
    ap.add_argument("--trace", default="configs/traces/step.csv")
    ap.add_argument("--policies", default="milp-reactive,autoscaler")
    ap.add_argument("--sim", default="des")
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args(argv)
    scenario = load_scenario(args.scenario)
    name, trace = resolve_trace(args.trace, scenario)
    specs = with_shielded([p.strip() for p in args.policies.split(",") if p.strip()])
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    ev = evaluate(scenario, {name: trace}, specs, sim=args.sim, seeds=args.seeds)
    wall = time.perf_counter() - t0
    lines = [
        f"{args.scenario}, trace {args.trace}, {args.sim}, {args.seeds} seed(s); "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
        f"load average {load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after, "
        f"{wall:.0f} s wall",
        "",
        markdown_table(ev),
        "| policy | seed | SLO attainment | $ | model loads | shield interventions | of them "
        "scale-ups | unresolved misses | shield ms / decision (mean / max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ev.runs:
        t, sh = r.totals, r.shield
        att = t.get("slo_attainment")
        cells = [
            r.policy,
            str(r.seed),
            "-" if att is None else f"{100 * att:.2f} %",
            f"{t.get('dollars', float('nan')):.3f}",
            f"{t.get('reconfigurations', 0)}",
            "-" if sh is None else str(sh["interventions"]),
            "-" if sh is None else str(sh["scale_ups"]),
            "-" if sh is None else str(sh["missed"]),
            "-" if sh is None else f"{sh['mean_ms']:.1f} / {sh['max_ms']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    stem = f"{args.scenario}_{Path(name).stem}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"shield_{stem}.json").write_text(
        json.dumps(ev.to_dict(series=False), indent=1, default=str), "utf-8"
    )
    write_section(
        RESULTS / "shield.md",
        f"<!-- shield {stem} -->",
        f"<!-- /shield {stem} -->",
        "\n".join(lines),
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
