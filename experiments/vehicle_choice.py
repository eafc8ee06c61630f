"""Which variant combination the planner picks for ``vehicle`` as the load grows.

For loads 0.25, 0.35, ..., 0.85, 0.9 of the largest sustainable rate (``jbrl plan --max-rate``)
this plans the embedded ``vehicle`` scenario with the MILP (``jbrl plan --solver milp``) and
records the chosen (Detector, ReId) combination, its accuracy and the cost, and writes the
table to ``experiments/results/vehicle_choice.md`` (and ``.json``). ``--explore T1,T2,...``
prints the same for other accuracy targets (how the scenario's target was chosen: at least
four combinations meet it and the cheapest one changes with the load).

    .venv/bin/python experiments/vehicle_choice.py            # the table (about a minute)
    .venv/bin/python experiments/vehicle_choice.py --explore 34,35,36,37,38
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from jbrl.planning import get_planner
from jbrl.planning.milp import max_rate
from jbrl.scenario import Scenario, load_scenario, scenario_from_dict

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "vehicle_choice"
LOADS = [0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.9]


def with_target(sc: Scenario, target: float) -> Scenario:
    """``sc`` with another accuracy target."""
    doc = sc.model_dump(by_alias=True, exclude_none=True)
    doc["slo"]["min_accuracy"] = target
    return scenario_from_dict(doc, f"<{sc.name} target {target}>")


def choices(sc: Scenario, planner: str = "milp") -> dict[str, Any]:
    """Max rate and, per load fraction, the planner's combination, accuracy and cost."""
    top = max_rate(sc)
    peak = top.scale * sc.sources[0].rate
    rows = []
    for f in LOADS:
        rate = f * peak
        t0 = time.perf_counter()
        res = get_planner(planner).plan(sc, rates={sc.sources[0].name: rate})
        ma = res.plan.model_assignment
        rows.append(
            {
                "load": f,
                "rate": round(rate, 3),
                "status": res.status,
                "detector": ma.get("Detector"),
                "reid": ma.get("ReId"),
                "accuracy": res.accuracy,
                "total_cost": res.total_cost,
                "workers": sum(len(v) for v in res.plan.worker_assignment.values()),
                "solve_s": round(time.perf_counter() - t0, 3),
            }
        )
    meeting = [a for a, acc in sc.variant_combinations() if acc >= sc.slo.min_accuracy]
    distinct = {(r["detector"], r["reid"]) for r in rows if r["status"] != "infeasible"}
    return {
        "target": sc.slo.min_accuracy,
        "combinations_meeting_target": len(meeting),
        "max_rate": peak,
        "distinct_choices": len(distinct),
        "rows": rows,
    }


def markdown(result: dict[str, Any], machine: str) -> str:
    lines = [
        "# Vehicle: the planner's variant choice across loads",
        "",
        "Written by `experiments/vehicle_choice.py` (MILP, `jbrl plan --solver milp`) on the "
        "embedded `vehicle` scenario. "
        f"Accuracy target {result['target']:g}: {result['combinations_meeting_target']} "
        f"combinations meet it; largest sustainable rate (`jbrl plan --max-rate`) "
        f"{result['max_rate']:.3f} frames/s; {result['distinct_choices']} different "
        "combinations chosen across the loads below.",
        "",
        "| load (x max) | frames/s | detector | re-id | accuracy | $/h | workers | solve s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cost = "-" if r["total_cost"] is None else f"{r['total_cost']:.4f}"
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.2f}"
        lines.append(
            f"| {r['load']:.2f} | {r['rate']:.3f} | {r['detector']} | {r['reid']} | {acc} | "
            f"{cost} | {r['workers']} | {r['solve_s']:.2f} |"
        )
    lines += ["", f"Machine: {machine}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--explore", default="", help="comma-separated accuracy targets to try")
    ap.add_argument("--planner", default="milp", help="planner name (jbrl plan --solver)")
    args = ap.parse_args()
    sc = load_scenario("vehicle")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    if args.explore:
        for t in (float(x) for x in args.explore.split(",")):
            r = choices(with_target(sc, t), args.planner)
            picks = [f"{x['detector']}+{x['reid']}" for x in r["rows"]]
            print(
                f"target {t:g}: {r['combinations_meeting_target']} meet it, max rate "
                f"{r['max_rate']:.3f}, {r['distinct_choices']} distinct: {picks}"
            )
        return
    result = choices(sc, args.planner)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    OUT.with_suffix(".md").write_text(markdown(result, machine))
    print(markdown(result, machine))


if __name__ == "__main__":
    main()
