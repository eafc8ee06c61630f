"""``jbrl demo``: the main job on the embedded default scenario.

Shows the scenario, then plans it with the exact MILP, JellyBean's heuristic and the cloud-only
baseline, prints them side by side (cost, accuracy, gap to the optimum) and writes each plan as
JSON into the output folder, where ``jbrl cost`` can check it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from jbrl.cli._common import DEFAULT_SCENARIO_NAME, ScenarioOpt, console, get_scenario
from jbrl.cli.scenario_cmds import show
from jbrl.errors import InfeasibleError

DEMO_SOLVERS = ("milp", "jellybean", "cloud-only")


def demo(
    scenario: ScenarioOpt = DEFAULT_SCENARIO_NAME,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the plans the demo writes.")
    ] = Path("runs/demo"),
) -> None:
    """Main job: show the default scenario, plan it with MILP, JellyBean and cloud-only."""
    from jbrl.agents import get_planner

    s = get_scenario(scenario)
    show(scenario)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in DEMO_SOLVERS:
        with console.status(f"planning with {name} ..."):
            try:
                result = get_planner(name).plan(s)
            except InfeasibleError as exc:
                rows.append((name, None, exc.reason))
                continue
        data = result.to_dict()
        (out / f"plan-{name}.json").write_text(json.dumps(data, indent=2) + "\n", "utf-8")
        rows.append((name, data, None))
    best = min((d["total_cost"] for _, d, _ in rows if d), default=None)
    t = Table(title=f"Plans for {s.name} at nominal load (accuracy target {s.slo.min_accuracy:g})")
    for col in (
        "solver",
        "status",
        "compute $/h",
        "comm $/h",
        "total $/h",
        "vs best",
        "accuracy",
        "workers",
        "solve s",
    ):
        t.add_column(col, justify="right" if col not in ("solver", "status") else "left")
    for name, d, reason in rows:
        if d is None:
            t.add_row(name, "infeasible", "", "", "", "", "", "", reason or "")
            continue
        nworkers = sum(len(v) for v in d["worker_assignment"].values())
        t.add_row(
            name,
            d["status"],
            f"{d['compute_cost']:.4f}",
            f"{d['communication_cost']:.4f}",
            f"{d['total_cost']:.4f}",
            f"{d['total_cost'] / best - 1:+.1%}" if best else "",
            f"{d['accuracy']:g}" if d.get("accuracy") is not None else "-",
            str(nworkers),
            f"{d['solve_time_s']:.3f}",
        )
    console.print(t)
    console.print(
        f"plans written to {out}/ (check one with: jbrl cost --scenario {scenario} "
        f"--plan {out}/plan-milp.json)"
    )
